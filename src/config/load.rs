//! Reading the configuration file (SPEC 3, SPEC 12): TOML text to a validated
//! `Config`, relative paths resolved against the file's directory.

use super::error::ConfigError;
use super::paths;
use super::raw::RawConfig;
use super::settings::Config;
use super::validate::validate;
use std::path::{Path, PathBuf};

impl Config {
    /// Built-in defaults: HTTP on 127.0.0.1:8080, state under `data/`, one dynamic zone.
    pub fn defaults() -> Config {
        validate(RawConfig::default(), None, &mut paths::Files::default())
            .expect("built-in defaults are valid")
    }

    /// The built-in defaults as `serve` and the commands use them: their
    /// relative paths resolved against the working directory (SPEC 12), so
    /// that every message names an absolute path.
    pub fn defaults_here() -> Result<Config, ConfigError> {
        let cwd = std::env::current_dir()
            .map_err(|e| ConfigError::one(format!("cannot read the working directory: {e}")))?;
        let mut c = Config::defaults();
        c.resolve_paths(&cwd);
        paths::check_distinct(&paths::Files::of(&c))
            .map_err(|e| ConfigError::within(e, "built-in defaults"))?;
        Ok(c)
    }

    /// Read and validate `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        // Messages name the file by its absolute path (SPEC 12).
        let path = &std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::one(format!("{}: cannot read config file: {e}", path.display()))
        })?;
        Config::parse(&text, Some(path))
    }

    pub fn parse(text: &str, path: Option<&Path>) -> Result<Config, ConfigError> {
        let name = path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "config".into());
        let raw: RawConfig =
            basic_toml::from_str(text).map_err(|e| ConfigError::one(format!("{name}: {e}")))?;
        // The paths of the values that are usable, even when others are not.
        let mut files = paths::Files::default();
        let validated = validate(raw, path, &mut files);
        let Some(p) = path else {
            return validated.map_err(|e| ConfigError::within(e, &name));
        };
        // SPEC 12: relative paths in a file are relative to the file's
        // directory, not to wherever the command happens to be run from.
        let file = std::path::absolute(p)
            .map_err(|e| ConfigError::one(format!("{name}: cannot make the path absolute: {e}")))?;
        let dir = file.parent().unwrap_or(Path::new("/")).to_path_buf();
        files.resolve(&dir);
        files.config_file(&file);
        // Only now that the paths are what the service will open (SPEC 17).
        let clashes = paths::check_distinct(&files).err().unwrap_or_default();
        match validated {
            Ok(mut config) if clashes.is_empty() => {
                config.source = Some(file);
                config.resolve_paths(&dir);
                Ok(config)
            }
            Ok(_) => Err(ConfigError::within(clashes, &name)),
            Err(mut problems) => {
                problems.extend(clashes);
                Err(ConfigError::within(problems, &name))
            }
        }
    }

    /// Make every relative file path absolute against `base`.
    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.server.tls_cert);
        fix(&mut self.server.tls_key);
        fix(&mut self.database.path);
        for z in &mut self.zones {
            fix(&mut z.file);
            if let Some(i) = z.include.as_mut() {
                fix(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::update::bounds::Bounds;
    use std::net::SocketAddr;

    /// The example file says it shows every key with its default, except the
    /// two paths (absolute, for the installed service): hold it to that (a
    /// changed default or a key missing from `Config` fails here).
    #[test]
    fn example_config_shows_the_built_in_defaults() {
        let text = include_str!("../../data/dedyn-update.example.toml");
        let mut example = Config::parse(text, None).expect("the example config parses");
        let defaults = Config::defaults();
        assert_eq!(
            example.database.path,
            Path::new("/var/lib/dedyn-update/dedyn-update.sqlite3")
        );
        assert_eq!(
            example.zones[0].file,
            Path::new("/var/lib/dedyn-update/zones/dedyn.example.zone")
        );
        example.database.path = defaults.database.path.clone();
        example.zones[0].file = defaults.zones[0].file.clone();
        assert_eq!(format!("{example:?}"), format!("{defaults:?}"));
        for section in [
            "[server]",
            "[database]",
            "[dns]",
            "[dns_update]",
            "[[zone]]",
            "[rate_limit]",
            "[limits]",
        ] {
            assert!(
                text.lines().any(|l| l.trim() == section),
                "{section} missing from the example"
            );
        }
    }

    #[test]
    fn defaults_give_a_local_instance() {
        let c = Config::defaults();
        assert_eq!(
            c.server.http_listen,
            vec!["127.0.0.1:8080".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(c.server.workers, 4);
        assert_eq!(c.database.path, PathBuf::from("data/dedyn-update.sqlite3"));
        assert_eq!(c.zones.len(), 1);
        assert_eq!(c.zones[0].name, "dedyn.example");
        assert_eq!(
            c.zones[0].nameservers,
            vec!["ns1.dedyn.example.".to_string()]
        );
        assert_eq!(c.dns.ttl, 60);
        assert_eq!(c.dns.guard_fallback.len(), 3);
    }

    /// SPEC 12: relative paths in a file resolve against its directory; the
    /// built-in defaults against the working directory; absolute ones stay.
    #[test]
    fn relative_paths_resolve_against_the_config_files_directory() {
        let text = "[server]\ntls_cert = \"tls/cert.pem\"\ntls_key = \"/k.pem\"\n\
                    [database]\npath = \"db.sqlite3\"\n\
                    [[zone]]\nname = \"dyn.example\"\nfile = \"../zones/dyn.zone\"\ninclude = \"static\"\n";
        let c = Config::parse(text, Some(Path::new("/etc/dd/config.toml"))).unwrap();
        assert_eq!(c.database.path, Path::new("/etc/dd/db.sqlite3"));
        assert_eq!(c.server.tls_cert, Path::new("/etc/dd/tls/cert.pem"));
        assert_eq!(c.server.tls_key, Path::new("/k.pem"));
        assert_eq!(c.zones[0].file, Path::new("/etc/dd/../zones/dyn.zone"));
        assert_eq!(
            c.zones[0].include.as_deref(),
            Some(Path::new("/etc/dd/static"))
        );
        assert_eq!(c.source.as_deref(), Some(Path::new("/etc/dd/config.toml")));
        let here = Config::defaults_here().unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(here.database.path, cwd.join("data/dedyn-update.sqlite3"));
        assert_eq!(
            here.zones[0].file,
            cwd.join("data/zones/dedyn.example.zone")
        );
    }

    /// A zone file path that cannot name a file is refused at start-up.
    #[test]
    fn zone_file_must_be_a_file_path() {
        for bad in ["", "zones/", ".", "/var/lib/x/.."] {
            let text = format!("[[zone]]\nname = \"dyn.example\"\nfile = \"{bad}\"\n");
            let e = Config::parse(&text, None).unwrap_err().to_string();
            assert!(
                e.contains("zone[0].file") && e.contains("not a file path"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::parse("[server]\nworkerz = 3\n", Some(Path::new("/etc/x.toml")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/etc/x.toml") && e.contains("workerz"), "{e}");
    }

    /// One load names every problem, one per line with the file's name before
    /// each, in every section, not only the first it meets.
    #[test]
    fn every_problem_is_named_on_its_own_line() {
        let text = "[server]\nhttp_listen = [\"nonsense\", \"also:bad\"]\nworkers = 0\nunix_mode = \"rw\"\n\
                    [database]\nsynchronous = \"sometimes\"\npath = \"\"\n\
                    [dns]\nttl = -1\nguard_fallback = [\"nonsense\"]\n\
                    [[zone]]\nname = \"bad zone\"\n\
                    [[zone]]\nname = \"ok.example\"\nnameservers = []\n\
                    [rate_limit]\ndyndns_per_domain = \"lots\"\n\
                    [limits]\ndomains_per_user = -1\nnames_per_domain = -2\n";
        let e = Config::parse(text, Some(Path::new("/etc/x.toml"))).unwrap_err();
        let keys = [
            "server.http_listen: 'nonsense'",
            "server.http_listen: 'also:bad'",
            "server.unix_mode = 'rw'",
            "server.workers = 0",
            "database.synchronous = 'sometimes'",
            "database.path: must not be empty",
            "dns.ttl = -1",
            "dns.guard_fallback",
            "zone[0].name",
            "zone[1].nameservers: at least one",
            "rate_limit.dyndns_per_domain",
            "limits.names_per_domain = -2",
            "limits.domains_per_user = -1",
        ];
        assert_eq!(e.problems.len(), keys.len(), "{e}");
        for (line, key) in e.to_string().lines().zip(keys) {
            assert!(
                line.starts_with("/etc/x.toml: ") && line.contains(key),
                "{key}: {e}"
            );
        }
        // Each problem alone reads as it did when it was the only one.
        let alone = Config::parse("[server]\nworkers = 0\n", Some(Path::new("/etc/x.toml")))
            .unwrap_err()
            .to_string();
        assert_eq!(
            alone,
            "/etc/x.toml: server.workers = 0: must be between 1 and 1024"
        );
        assert!(e.problems.contains(&alone), "{e}");
    }

    /// A check that needs an unusable value is skipped, not reported as a
    /// second problem: with `http_listen` unusable, a `unix:` proxy is not
    /// called "not a listener"; a misspelt proxy entry does not also leave
    /// its listener "not in trusted_proxies"; a bad zone name no duplicate.
    #[test]
    fn a_check_that_needs_an_unusable_value_is_skipped() {
        let sock = "unix:/run/dedyn-update/http.sock";
        for (text, only) in [
            (
                format!("[server]\nhttp_listen = [\"{sock}\", \"nonsense\"]\ntrusted_proxies = [\"{sock}\"]\n"),
                "'nonsense' is not an address:port",
            ),
            (
                format!("[server]\nhttp_listen = [\"{sock}\"]\ntrusted_proxies = [\"{sock}\", \"10.0.0.0/40\"]\n"),
                "server.trusted_proxies",
            ),
            (
                "[[zone]]\nname = \"bad zone\"\n[[zone]]\nname = \"bad zone\"\nfile = \"b.zone\"\n".into(),
                "is not a valid zone name",
            ),
        ] {
            let e = Config::parse(&text, None).unwrap_err();
            assert!(
                e.problems.iter().all(|p| p.contains(only)),
                "{text}: {e}"
            );
        }
        // Two zones with a bad name each are both named, and their files too.
        let e = Config::parse(
            "[[zone]]\nname = \"a b\"\nfile = \"z/\"\n[[zone]]\nname = \"c d\"\n",
            None,
        )
        .unwrap_err();
        assert_eq!(e.problems.len(), 3, "{e}");
        assert!(e.problems[1].contains("zone[0].file"), "{e}");
        assert!(e.problems[2].contains("zone[1].name"), "{e}");
    }

    #[test]
    fn bad_value_is_named() {
        let e = Config::parse("[server]\nhttp_listen = [\"nonsense\"]\n", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.http_listen"), "{e}");
        let e = Config::parse("[server]\nworkers = 0\n", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.workers"), "{e}");
        let e = Config::parse("[rate_limit]\ndyndns_per_domain = \"lots\"\n", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("rate_limit.dyndns_per_domain"), "{e}");
        let e = Config::parse("[[zone]]\nname = \"bad zone\"\n", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("zone[0].name"), "{e}");
    }

    /// SPEC 17: `unix:` listeners, named in `trusted_proxies`, and the
    /// loopback trust that `check` refuses without the allow key.
    #[test]
    fn unix_listeners_must_be_trusted_proxies_and_loopback_trust_is_a_problem() {
        let sock = "unix:/run/dedyn-update/http.sock";
        let c = Config::parse(
            &format!(
                "[server]\nhttp_listen = [\"{sock}\"]\ntrusted_proxies = [\"{sock}\", \"10.0.0.0/8\"]\nunix_mode = \"0600\"\n"
            ),
            None,
        )
        .unwrap();
        assert!(c.server.http_listen.is_empty());
        assert_eq!(
            c.server.http_unix,
            [Path::new("/run/dedyn-update/http.sock")]
        );
        assert_eq!(c.server.trusted_proxies.unix, c.server.http_unix);
        assert_eq!(c.server.trusted_proxies.nets.len(), 1);
        assert_eq!(c.server.unix_mode, 0o600);
        assert_eq!(Config::defaults().server.unix_mode, 0o660);
        for (text, key) in [
            (format!("http_listen = [\"{sock}\"]"), "server.http_listen"),
            (
                format!("trusted_proxies = [\"{sock}\"]"),
                "server.trusted_proxies",
            ),
            ("http_listen = [\"unix:run/x.sock\"]".into(), "absolute"),
            (
                "http_listen = [\"unix:/run/a b.sock\"]".into(),
                "without spaces",
            ),
            (
                format!("https_listen = [\"{sock}\"]"),
                "server.https_listen",
            ),
            ("unix_mode = \"rw\"".into(), "server.unix_mode"),
            ("unix_mode = \"01777\"".into(), "server.unix_mode"),
        ] {
            let e = Config::parse(&format!("[server]\n{text}\n"), None)
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
        let loopback = |lines: &str| {
            Config::parse(&format!("[server]\n{lines}"), None)
                .unwrap()
                .server
                .loopback_trust_problem()
        };
        let trust = "trusted_proxies = [\"127.0.0.0/8\"]\n";
        assert!(loopback(trust).is_some_and(|p| p.contains("127.0.0.1")));
        assert!(loopback(&format!(
            "{trust}trusted_proxies_allow_local_users = true\n"
        ))
        .is_none());
        // Only a unix: listener: no TCP listener a local user could reach.
        assert!(loopback(&format!(
            "http_listen = [\"{sock}\"]\ntrusted_proxies = [\"127.0.0.0/8\", \"{sock}\"]\n"
        ))
        .is_none());
    }

    /// SPEC 14: off by default; never where the local nameserver listens
    /// unless told to; each address once.
    #[test]
    fn dns_update_listeners_keep_off_the_nameservers_address() {
        assert!(Config::defaults().dns_update.listen.is_empty());
        let with = |dns: &str, listen: &str| {
            Config::parse(
                &format!("[dns]\n{dns}\n[dns_update]\nlisten = [{listen}]\n"),
                None,
            )
        };
        let c = with("", "\"127.0.0.1:5353\", \"[::1]:5353\"").unwrap();
        assert_eq!(c.dns_update.listen.len(), 2);
        let ns = "verify_server = \"127.0.0.1:53\"";
        for clash in ["\"127.0.0.1:53\"", "\"0.0.0.0:53\""] {
            let e = with(ns, clash).unwrap_err().to_string();
            assert!(
                e.contains("dns_update.listen") && e.contains("allow_nameserver_address"),
                "{e}"
            );
        }
        assert!(with(ns, "\"127.0.0.2:53\", \"127.0.0.1:5353\", \"[::1]:53\"").is_ok());
        let allowed = format!(
            "[dns]\n{ns}\n[dns_update]\nlisten = [\"127.0.0.1:53\"]\nallow_nameserver_address = true\n"
        );
        assert!(Config::parse(&allowed, None).is_ok());
        let e = with("", "\"127.0.0.1:5353\", \"127.0.0.1:5353\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("listed twice"), "{e}");
        let e = with("", "\"nonsense\"").unwrap_err().to_string();
        assert!(e.contains("dns_update.listen: 'nonsense'"), "{e}");
    }

    #[test]
    fn limits_are_counts_and_zero_means_none() {
        let c = Config::parse("[limits]\nnames_per_domain = 0\n", None).unwrap();
        assert_eq!(c.limits.names_per_domain, 0);
        assert_eq!(c.limits.records_per_name, 32);
        assert!(!Bounds::over(0, u64::MAX));
        assert!(Bounds::over(100, 101) && !Bounds::over(100, 100));
        let e = Config::parse("[limits]\ndomains_per_user = -1\n", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("limits.domains_per_user"), "{e}");
    }

    #[test]
    fn zones_are_normalised_and_matched_strictly_below() {
        let c = Config::parse(
            "[[zone]]\nname = \"Dyn.Example.\"\n[[zone]]\nname = \"a.dyn.example\"\n",
            None,
        )
        .unwrap();
        assert_eq!(c.zones[0].name, "dyn.example");
        assert_eq!(c.zone_for("x.dyn.example").unwrap().name, "dyn.example");
        assert_eq!(c.zone_for("x.a.dyn.example").unwrap().name, "a.dyn.example");
        assert!(c.zone_for("dyn.example").is_none());
        assert!(c.zone_for("xdyn.example").is_none());
    }
}
