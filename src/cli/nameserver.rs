//! `dedyn-update nameserver nsd|knot|bind [--dnssec]`: the nameserver's side of the
//! configured zones as Debian 12 packages each nameserver (SPEC 12). Pure: config in, text out.
//!
//! The text is a POSIX shell script an operator reads and then runs as root
//! (`dedyn-update nameserver nsd | sh -e`): each step is a `#` comment saying why,
//! followed by the file it writes (a here-document with the exact config) or the
//! command it runs. The `[dns]` keys for dedyn-update's own config come last, as
//! comments, because that file is the operator's to edit.
//!
//! What Debian's packaging asks for, and where it shows up below:
//! - NSD 4.6: the stock `/etc/nsd/nsd.conf` includes `nsd.conf.d/*.conf`, so we
//!   add a file and change nothing. NSD writes its IXFR spool next to the
//!   `zonefile:` path it is given (`FILE.ixfr*`, `FILE.spoolzone.N`), and
//!   `nsd.service` (`ProtectSystem=strict`) lets it write only `/var/lib/nsd`,
//!   `/etc/nsd` and `/run`: NSD reads our zone through a link in
//!   `/var/lib/nsd/dedyn-update/`, so the spool lands there, never in our directory.
//! - Knot 3.2: the stock `knot.conf` already has `template: default` (repeating it
//!   is a "duplicate identifier") and listens nowhere: we write our own file with a
//!   template of our own, a `listen`, and the zones, and add one `include:` line.
//! - BIND 9.18: zones go in a file included from `named.conf.local`; AppArmor's
//!   profile for `named` allows reading only `/etc/bind`, `/var/lib/bind` and
//!   `/var/cache/bind`, so the zone directories are added to its local override;
//!   the IXFR journal goes to `/var/lib/bind`, not next to our zone.

use super::args::{usage, Failure, Out};
use crate::config::settings::{Config, Zone};
use std::fmt::{self, Write};
use std::path::{Path, PathBuf};

/// Which nameserver to wire up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nameserver {
    Nsd,
    Knot,
    Bind,
}

/// Why nothing was printed.
#[derive(Debug, PartialEq, Eq)]
pub enum NameserverError {
    /// The command line is wrong (exit 2).
    Usage(String),
    /// The config cannot be wired as it is (exit 1): e.g. a path no config can quote.
    Config(String),
}

impl fmt::Display for NameserverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameserverError::Usage(m) | NameserverError::Config(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for NameserverError {}

pub const USAGE: &str = "usage: dedyn-update nameserver nsd|knot|bind [--dnssec]\n\
Prints, as a shell script to read and then run as root, what Debian 12's NSD, Knot or BIND\n\
needs to serve the configured zones: the zone statements with the zone files' absolute\n\
paths, the permissions between the two services, what the nameserver's Debian packaging\n\
asks for, and the [dns] reload_command and verify_server for dedyn-update's config.\n\
--dnssec (knot only): Knot signs the zones automatically; prints how to get the DS records.";

/// What the command line asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub nameserver: Nameserver,
    pub dnssec: bool,
}

/// `nsd|knot|bind [--dnssec]`, in any order.
pub fn parse_args(args: &[String]) -> Result<Request, NameserverError> {
    let usage = |m: String| NameserverError::Usage(format!("{m}\n{USAGE}"));
    let mut nameserver = None;
    let mut dnssec = false;
    for a in args {
        match a.as_str() {
            "--dnssec" => dnssec = true,
            "nsd" | "knot" | "bind" if nameserver.is_some() => {
                return Err(usage("nameserver: name one nameserver".into()))
            }
            "nsd" => nameserver = Some(Nameserver::Nsd),
            "knot" => nameserver = Some(Nameserver::Knot),
            "bind" => nameserver = Some(Nameserver::Bind),
            other if other.starts_with('-') => {
                return Err(usage(format!("nameserver: unknown option '{other}'")))
            }
            other => {
                return Err(usage(format!(
                    "nameserver: unknown nameserver '{other}' (nsd, knot or bind)"
                )))
            }
        }
    }
    let nameserver =
        nameserver.ok_or_else(|| usage("nameserver: which one? nsd, knot or bind".into()))?;
    if dnssec && nameserver != Nameserver::Knot {
        return Err(usage(
            "nameserver: --dnssec is for knot only (Knot signs the zone dedyn-update writes; \
             NSD cannot sign, and BIND's inline signing is not set up by this command)"
                .into(),
        ));
    }
    Ok(Request { nameserver, dnssec })
}

/// `nameserver nsd|knot|bind [--dnssec]`: the script goes to stdout.
pub fn run(config: &Config, args: &[String]) -> Out {
    let text = parse_args(args)
        .and_then(|request| render(config, request))
        .map_err(|e| match e {
            NameserverError::Usage(m) => usage(m),
            NameserverError::Config(m) => Failure::from(m),
        })?;
    print!("{text}");
    Ok(())
}

/// One configured zone with the absolute path of its file.
struct Wired<'a> {
    zone: &'a Zone,
    file: PathBuf,
}

/// The script for `request` and the zones of `config`.
pub fn render(config: &Config, request: Request) -> Result<String, NameserverError> {
    let zones = wired_zones(config)?;
    let conf = config.source.as_deref();
    let mut out = String::new();
    match request.nameserver {
        Nameserver::Nsd => nsd(&zones, conf, &mut out),
        Nameserver::Knot => knot(&zones, conf, request.dnssec, &mut out),
        Nameserver::Bind => bind(&zones, conf, &mut out),
    }
    Ok(out)
}

/// The zone file's path as the nameserver must see it. A config file's relative
/// paths are already resolved against its directory when it is loaded (SPEC 12);
/// only the built-in defaults are relative to the working directory.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn wired_zones(config: &Config) -> Result<Vec<Wired<'_>>, NameserverError> {
    config
        .zones
        .iter()
        .enumerate()
        .map(|(i, zone)| {
            let file = absolute(&zone.file);
            let text = file.to_string_lossy();
            // Every nameserver config quotes with "..."; these cannot be quoted in all three.
            if text
                .chars()
                .any(|c| c == '"' || c == '\\' || c.is_control())
            {
                return Err(NameserverError::Config(format!(
                    "zone[{i}].file: '{}' holds a character (\", \\ or a control character) \
                     that nameserver configs cannot quote: choose another path",
                    text.escape_debug()
                )));
            }
            Ok(Wired { zone, file })
        })
        .collect()
}

/// Quote for `sh` when needed: paths are shown as the operator would type them.
fn sh(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@,=".contains(c));
    if plain {
        s.to_string()
    } else {
        crate::publish::reload::shell_quote(s)
    }
}

fn header(out: &mut String, title: &str, command: &str, zones: &[Wired], conf: Option<&Path>) {
    let _ = writeln!(out, "# {title}, for dedyn-update's zones:");
    for w in zones {
        let _ = writeln!(out, "#   {}  {}", w.zone.name, w.file.display());
    }
    let (option, last) = match conf {
        Some(c) => (
            format!("--config {} ", sh(&c.to_string_lossy())),
            "sets the two [dns] keys in dedyn-update's own config, then restarts",
        ),
        None => (
            String::new(),
            "names the two [dns] keys for dedyn-update's config: put them there",
        ),
    };
    let _ = writeln!(
        out,
        "# Read it, then run it as root: dedyn-update {option}nameserver {command} | sh -e\n\
         # (it {last})."
    );
}

/// The nameserver's user reads the zone files through group dedyn-update (the
/// unit's UMask=0027 makes them 0640 in 0750 directories); the reload command
/// reaches the nameserver's control socket or key (`what`) through the
/// nameserver's group, named like its user. Then the nameserver's own config
/// check; the restarts come last (`restarts`).
fn permissions(out: &mut String, step: u32, user: &str, what: &str, check: &str) {
    let _ = writeln!(
        out,
        "#\n# {step}. Permissions. {user} reads the zone files through group dedyn-update\n\
         #    (dedyn-update.service's UMask=0027: files 0640, directories 0750), and\n\
         #    dedyn-update's reload command reaches {what} through group {user}.\n\
         usermod -aG dedyn-update {user}\n\
         mkdir -p /etc/systemd/system/dedyn-update.service.d\n\
         cat > /etc/systemd/system/dedyn-update.service.d/nameserver.conf <<'EOF'\n\
         [Service]\n\
         SupplementaryGroups={user}\n\
         EOF\n\
         {check}"
    );
}

/// The restarts, after every file and the [dns] keys are in place: under `sh -e`
/// a restart that fails (port 53 taken) stops the script, and must not leave
/// the config without its reload command (the service would then write zone
/// files that nobody reloads, silently).
fn restarts(out: &mut String, unit: &str, conf: Option<&Path>, group_step: u32) {
    let _ = writeln!(
        out,
        "#\n# Last, with everything above in place, the restarts: the nameserver reads\n\
         #    its new config (if this fails, fix what it says and run the script again;\n\
         #    `dedyn-update check --reload` shows what still does not work).\n\
         systemctl daemon-reload\n\
         systemctl restart {unit}"
    );
    if conf.is_some() {
        let _ = writeln!(
            out,
            "# A running dedyn-update restarts with the [dns] keys and step {group_step}'s group:\n\
             systemctl try-restart dedyn-update"
        );
    }
}

/// dedyn-update's side: `[dns] reload_command` and `verify_server`, set in the
/// config file with `config set` (the rest of the file is kept); with the built-in
/// defaults there is no file to set them in, so they are named for the operator.
fn dns_keys(out: &mut String, step: u32, conf: Option<&Path>, reload: &str, extra: &str) {
    let why = "#    reload_command runs after each zone file is written; verify_server: after\n\
               #    each reload dedyn-update waits until the nameserver serves the new SOA\n\
               #    serial (or a later one) and retries the publication if not.\n";
    let Some(conf) = conf else {
        let _ = writeln!(
            out,
            "#\n# {step}. dedyn-update's config, section [dns] (no config file was given: put\n\
             #    these into yours, or rerun with --config FILE to have this step set them):\n\
             #      reload_command = \"{reload}\"\n\
             #      verify_server = \"127.0.0.1:53\"\n\
             {why}{extra}\
             #    then: systemctl restart dedyn-update"
        );
        return;
    };
    let conf = sh(&conf.to_string_lossy());
    let _ = writeln!(
        out,
        "#\n# {step}. dedyn-update's side, in its config {conf}, section [dns]\n\
         #    (`config set` changes these two keys and keeps the rest of the file):\n\
         {why}{extra}\
         dedyn-update --config {conf} config set \\\n\
         \x20   dns.reload_command {} \\\n\
         \x20   dns.verify_server 127.0.0.1:53",
        sh(reload),
    );
}

/// Zone files under these are hidden from nsd by nsd.service (ProtectHome=true,
/// PrivateTmp=true): say so instead of printing a setup that cannot work.
fn hidden_from_nsd(file: &Path) -> bool {
    ["/home", "/root", "/run/user", "/tmp", "/var/tmp"]
        .iter()
        .any(|p| file.starts_with(p))
}

pub const NSD_SPOOL: &str = "/var/lib/nsd/dedyn-update";

fn nsd(zones: &[Wired], conf: Option<&Path>, out: &mut String) {
    header(out, "NSD 4.6 as Debian 12 packages it", "nsd", zones, conf);
    out.push_str(
        "#\n\
         # 1. Zones and a control socket, in a file that Debian's stock /etc/nsd/nsd.conf\n\
         #    includes (nsd.conf.d/*.conf): nsd.conf stays as it is. NSD listens on\n\
         #    port 53 of every address by default.\n\
         cat > /etc/nsd/nsd.conf.d/dedyn-update.conf <<'EOF'\n\
         # written by `dedyn-update nameserver nsd`\n\
         remote-control:\n\
         \x20   control-enable: yes\n\
         \x20   # a unix socket (mode 0660, group nsd): nsd-control needs no TLS keys\n\
         \x20   control-interface: /run/nsd/nsd.ctl\n",
    );
    for w in zones {
        let _ = write!(
            out,
            "\nzone:\n\
             \x20   name: {name}\n\
             \x20   # {file}, through the link made in step 2:\n\
             \x20   # NSD writes its IXFR spool next to this path.\n\
             \x20   zonefile: \"{NSD_SPOOL}/{name}.zone\"\n\
             \x20   # incremental transfers (IXFR) for secondaries, from each reload's changes\n\
             \x20   store-ixfr: yes\n\
             \x20   create-ixfr: yes\n",
            name = w.zone.name,
            file = w.file.display(),
        );
    }
    out.push_str("EOF\n");
    let _ = writeln!(
        out,
        "#\n\
         # 2. NSD's IXFR spool ({NSD_SPOOL}/NAME.zone.ixfr*, .spoolzone.*): nsd.service's\n\
         #    sandbox (ProtectSystem=strict, ReadWritePaths=/var/lib/nsd /etc/nsd /run)\n\
         #    lets nsd write there, and dedyn-update's zone directory stays read-only to nsd.\n\
         install -d -o nsd -g nsd -m 0750 {NSD_SPOOL}"
    );
    for w in zones {
        let _ = writeln!(
            out,
            "ln -sfn {} {}",
            sh(&w.file.to_string_lossy()),
            sh(&format!("{NSD_SPOOL}/{}.zone", w.zone.name))
        );
    }
    for w in zones.iter().filter(|w| hidden_from_nsd(&w.file)) {
        let _ = writeln!(
            out,
            "# WARNING: {} lies where nsd.service hides the file system from nsd\n\
             #    (ProtectHome=true, PrivateTmp=true): put the zone files under /var/lib.",
            w.file.display()
        );
    }
    permissions(
        out,
        3,
        "nsd",
        "/run/nsd/nsd.ctl",
        "nsd-checkconf /etc/nsd/nsd.conf",
    );
    dns_keys(
        out,
        4,
        conf,
        "nsd-control -c /etc/nsd/nsd.conf reload {zone}",
        "#    (NSD drops a reload that arrives while it is still loading: keep verify_server.)\n",
    );
    restarts(out, "nsd", conf, 3);
}

pub const KNOT_INCLUDE: &str = "/etc/knot/dedyn-update.conf";

/// Knot's script. Long on purpose: it is the script's text, step by step in the
/// order the operator reads and runs it; split up, the steps' numbering and the
/// config file's sections would be spread over several functions.
fn knot(zones: &[Wired], conf: Option<&Path>, dnssec: bool, out: &mut String) {
    header(
        out,
        if dnssec {
            "Knot DNS 3.2 as Debian 12 packages it, signing the zones (DNSSEC)"
        } else {
            "Knot DNS 3.2 as Debian 12 packages it"
        },
        if dnssec { "knot --dnssec" } else { "knot" },
        zones,
        conf,
    );
    let _ = write!(
        out,
        "#\n\
         # 1. Everything in a file of its own, included from Debian's stock\n\
         #    /etc/knot/knot.conf. Appending to knot.conf instead would repeat its\n\
         #    `template: default` (\"duplicate identifier\"); the stock file listens nowhere.\n\
         cat > {KNOT_INCLUDE} <<'EOF'\n\
         # written by `dedyn-update nameserver knot{flag}`\n\
         server:\n\
         \x20   listen: [ 0.0.0.0@53, ::@53 ]\n",
        flag = if dnssec { " --dnssec" } else { "" },
    );
    if dnssec {
        // Before the template: Knot resolves the reference in file order.
        out.push_str(
            "\n\
             policy:\n\
             \x20 - id: dedyn-update\n\
             \x20   algorithm: ecdsap256sha256\n\
             \x20   # the KSK is never rolled automatically: its DS at the parent is yours\n\
             \x20   ksk-lifetime: 0\n\
             \x20   zsk-lifetime: 30d\n",
        );
    }
    out.push_str(
        "\n\
         template:\n\
         \x20 - id: dedyn-update\n\
         \x20   # the zone file is dedyn-update's: Knot never writes it back\n\
         \x20   zonefile-sync: -1\n",
    );
    if dnssec {
        out.push_str(
            "    # each reload applies the difference to the signed zone; Knot, not the\n\
             \x20   # file, sets the served serial (it changes it when it re-signs)\n\
             \x20   zonefile-load: difference-no-serial\n\
             \x20   journal-content: all\n\
             \x20   # served serial = max(unix time, previous + 1): never below the serial\n\
             \x20   # dedyn-update wrote (its serials are at most the time of writing)\n\
             \x20   serial-policy: unixtime\n\
             \x20   dnssec-signing: on\n\
             \x20   dnssec-policy: dedyn-update\n",
        );
    } else {
        out.push_str(
            "    # each reload's difference goes to the journal: IXFR for secondaries\n\
             \x20   zonefile-load: difference\n\
             \x20   journal-content: changes\n",
        );
    }
    out.push_str("\nzone:\n");
    for w in zones {
        let _ = writeln!(
            out,
            "  - domain: {}\n    template: dedyn-update\n    file: \"{}\"",
            w.zone.name,
            w.file.display()
        );
    }
    out.push_str("EOF\n");
    let _ = writeln!(
        out,
        "grep -qxF 'include: {KNOT_INCLUDE}' /etc/knot/knot.conf || echo 'include: {KNOT_INCLUDE}' >> /etc/knot/knot.conf"
    );
    permissions(
        out,
        2,
        "knot",
        "/run/knot/knot.sock (mode 0220)",
        "knotc -c /etc/knot/knot.conf conf-check",
    );
    dns_keys(
        out,
        3,
        conf,
        "knotc -s /run/knot/knot.sock -b zone-reload {zone}",
        "#    (-b: knotc returns once the zone is loaded, and fails on a bad zone file.)\n",
    );
    restarts(out, "knot", conf, 2);
    if dnssec {
        let _ = writeln!(
            out,
            "#\n\
             # 4. The DS records for the parent zone, once Knot serves the zone signed:\n\
             #    give them to whoever runs the parent (registrar, deSEC, your own parent zone)."
        );
        for w in zones {
            let _ = writeln!(
                out,
                "#      keymgr -c /etc/knot/knot.conf {} ds",
                w.zone.name
            );
        }
        let _ = writeln!(
            out,
            "#    When the parent serves them, tell Knot (it logs \"KSK submission\" until then):"
        );
        for w in zones {
            let _ = writeln!(
                out,
                "#      knotc -s /run/knot/knot.sock zone-ksk-submitted {}",
                w.zone.name
            );
        }
        out.push_str(
            "#    Receipts: Knot serves its own serial, never below the one dedyn-update wrote\n\
             #    (X-Zone-Serial); knotc -b returns once the signed zone is served, and only\n\
             #    then does dedyn-update count the publication (and check verify_server).\n",
        );
    }
}

pub const BIND_ZONES: &str = "/etc/bind/named.conf.dedyn-update";
pub const APPARMOR_LOCAL: &str = "/etc/apparmor.d/local/usr.sbin.named";

fn bind(zones: &[Wired], conf: Option<&Path>, out: &mut String) {
    header(
        out,
        "BIND 9.18 as Debian 12 packages it",
        "bind",
        zones,
        conf,
    );
    let _ = write!(
        out,
        "#\n\
         # 1. The zones, in a file of their own included from named.conf.local (Debian's\n\
         #    place for local zones). BIND listens on port 53 of every address by default.\n\
         cat > {BIND_ZONES} <<'EOF'\n\
         // written by `dedyn-update nameserver bind`\n"
    );
    for w in zones {
        let _ = write!(
            out,
            "zone \"{name}\" {{\n\
             \x20   type primary;\n\
             \x20   file \"{file}\";\n\
             \x20   // incremental transfers (IXFR) from each reload's changes; the journal\n\
             \x20   // goes where named may write, not next to dedyn-update's zone file\n\
             \x20   ixfr-from-differences yes;\n\
             \x20   journal \"/var/lib/bind/{name}.jnl\";\n\
             }};\n",
            name = w.zone.name,
            file = w.file.display(),
        );
    }
    out.push_str("EOF\n");
    let include = format!("include \"{BIND_ZONES}\";");
    let _ = writeln!(
        out,
        "grep -qxF {inc} /etc/bind/named.conf.local || echo {inc} >> /etc/bind/named.conf.local",
        inc = sh(&include)
    );
    let _ = writeln!(
        out,
        "#\n\
         # 2. AppArmor: Debian's profile for named lets it read zone files only under\n\
         #    /etc/bind, /var/lib/bind and /var/cache/bind; its local override adds ours."
    );
    let mut dirs: Vec<PathBuf> = zones
        .iter()
        .filter_map(|w| w.file.parent().map(Path::to_path_buf))
        .collect();
    dirs.sort();
    dirs.dedup();
    for d in dirs {
        let rule = format!("\"{}/**\" r,", d.display());
        let _ = writeln!(
            out,
            "grep -qxF {r} {APPARMOR_LOCAL} || echo {r} >> {APPARMOR_LOCAL}",
            r = sh(&rule)
        );
    }
    out.push_str(
        "if [ -d /sys/kernel/security/apparmor ]; then apparmor_parser -r /etc/apparmor.d/usr.sbin.named; fi\n",
    );
    permissions(
        out,
        3,
        "bind",
        "/etc/bind/rndc.key (mode 0640)",
        "named-checkconf /etc/bind/named.conf",
    );
    dns_keys(
        out,
        4,
        conf,
        "rndc reload {zone}",
        "#    (rndc reaches named's default control channel, 127.0.0.1:953, with rndc.key.)\n",
    );
    restarts(out, "named", conf, 3);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn config(text: &str, source: Option<&Path>) -> Config {
        Config::parse(text, source).unwrap()
    }

    #[test]
    fn arguments_name_one_nameserver_and_dnssec_only_for_knot() {
        assert_eq!(
            parse_args(&args(&["knot", "--dnssec"])).unwrap(),
            Request {
                nameserver: Nameserver::Knot,
                dnssec: true
            }
        );
        assert_eq!(
            parse_args(&args(&["bind"])).unwrap().nameserver,
            Nameserver::Bind
        );
        for bad in [
            &["powerdns"][..],
            &[],
            &["nsd", "knot"],
            &["nsd", "--dnssec"],
            &["bind", "--dnssec"],
            &["knot", "--sign"],
        ] {
            match parse_args(&args(bad)) {
                Err(NameserverError::Usage(m)) => assert!(m.contains("usage:"), "{m}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn relative_zone_files_resolve_against_the_config_files_directory() {
        let c = config(
            "[[zone]]\nname = \"dyn.example\"\nfile = \"zones/dyn.example.zone\"\n",
            Some(Path::new("/etc/dedyn-update/config.toml")),
        );
        let text = render(
            &c,
            Request {
                nameserver: Nameserver::Knot,
                dnssec: false,
            },
        )
        .unwrap();
        assert!(
            text.contains("file: \"/etc/dedyn-update/zones/dyn.example.zone\""),
            "{text}"
        );
    }

    #[test]
    fn every_zone_gets_a_statement_and_nsd_a_spool_link() {
        let c = config(
            "[[zone]]\nname = \"a.example\"\nfile = \"/var/lib/dedyn-update/zones/a.zone\"\n\
             [[zone]]\nname = \"b.example\"\nfile = \"/srv/dns zones/b.zone\"\n",
            None,
        );
        let nsd = render(
            &c,
            Request {
                nameserver: Nameserver::Nsd,
                dnssec: false,
            },
        )
        .unwrap();
        assert!(nsd.contains("zonefile: \"/var/lib/nsd/dedyn-update/a.example.zone\""));
        assert!(nsd.contains(
            "ln -sfn /var/lib/dedyn-update/zones/a.zone /var/lib/nsd/dedyn-update/a.example.zone"
        ));
        // A path with a space is quoted for the shell.
        assert!(nsd.contains("ln -sfn '/srv/dns zones/b.zone' "), "{nsd}");
        let bind = render(
            &c,
            Request {
                nameserver: Nameserver::Bind,
                dnssec: false,
            },
        )
        .unwrap();
        assert!(bind.contains("file \"/srv/dns zones/b.zone\";"));
        assert!(bind.contains("'\"/srv/dns zones/**\" r,'"), "{bind}");
        assert!(bind.contains("'\"/var/lib/dedyn-update/zones/**\" r,'"));
    }

    #[test]
    fn a_path_no_config_can_quote_is_refused_naming_the_key() {
        let c = config(
            "[[zone]]\nname = \"a.example\"\nfile = \"/x/a\\\"b.zone\"\n",
            None,
        );
        let e = render(
            &c,
            Request {
                nameserver: Nameserver::Nsd,
                dnssec: false,
            },
        )
        .unwrap_err();
        assert!(
            matches!(&e, NameserverError::Config(m) if m.contains("zone[0].file")),
            "{e}"
        );
    }

    #[test]
    fn dnssec_adds_signing_and_the_ds_command() {
        let c = config(
            "[[zone]]\nname = \"a.example\"\nfile = \"/z/a.zone\"\n",
            None,
        );
        let plain = render(
            &c,
            Request {
                nameserver: Nameserver::Knot,
                dnssec: false,
            },
        )
        .unwrap();
        let signed = render(
            &c,
            Request {
                nameserver: Nameserver::Knot,
                dnssec: true,
            },
        )
        .unwrap();
        assert!(!plain.contains("dnssec-signing") && plain.contains("zonefile-load: difference\n"));
        for want in [
            "dnssec-signing: on",
            "zonefile-load: difference-no-serial",
            "journal-content: all",
            "serial-policy: unixtime",
            "keymgr -c /etc/knot/knot.conf a.example ds",
        ] {
            assert!(signed.contains(want), "{want} missing:\n{signed}");
        }
    }

    /// Under `sh -e` a failing restart (port 53 taken) stops the script: the
    /// [dns] keys must already be set by then, for every nameserver.
    #[test]
    fn the_config_is_set_before_anything_restarts() {
        let c = config(
            "[[zone]]\nname = \"a.example\"\nfile = \"/z/a.zone\"\n",
            Some(Path::new("/etc/dedyn-update/config.toml")),
        );
        for (nameserver, dnssec) in [
            (Nameserver::Nsd, false),
            (Nameserver::Knot, false),
            (Nameserver::Knot, true),
            (Nameserver::Bind, false),
        ] {
            let script = render(&c, Request { nameserver, dnssec }).unwrap();
            let set = script.find(" config set ").expect("config set");
            let first_restart = script.find("systemctl ").expect("systemctl");
            assert!(set < first_restart, "restart before config set:\n{script}");
            assert!(
                script
                    .trim_end()
                    .ends_with("systemctl try-restart dedyn-update")
                    || dnssec,
                "{script}"
            );
        }
    }
}
