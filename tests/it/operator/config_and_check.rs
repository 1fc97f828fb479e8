//! The operator's path (SPEC 12) through the real binary: relative paths in a
//! config file, commands that must not create a database, and `check` trying
//! what the service will do — as the user running it.
use crate::common::dns::Rig;
use crate::common::edge::Pki;
use crate::common::ns::Kind;
use crate::common::proc::{require_root, TempDir};
use crate::common::server::{as_nobody, cli_in, nobody_sandbox, CliOutput, Server, Setup, BIN};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

const EMAIL: &str = "alice@example.org";

fn write(path: &Path, text: &str) {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(path, text).unwrap();
}

/// `check` failed: exit 1, nothing on stdout, and a stderr line that names all of `parts`.
#[track_caller]
fn assert_check_names(o: &CliOutput, parts: &[&str]) {
    assert_eq!(o.code, 1, "check should fail: {}{}", o.stdout, o.stderr);
    assert_eq!(o.stdout, "");
    assert!(
        o.stderr
            .lines()
            .any(|l| parts.iter().all(|p| l.contains(p))),
        "no stderr line names all of {parts:?}:\n{}",
        o.stderr
    );
}

/// SPEC 12: `database.path`, the zone file and the include file of a config file
/// are relative to the file's directory, whatever directory the command runs in;
/// creating the database is said on stderr with its absolute path.
#[test]
fn relative_paths_resolve_against_the_config_files_directory() {
    let dir = TempDir::new("ops");
    let d = dir.path();
    let cfg = d.join("etc/config.toml");
    write(
        &cfg,
        "[database]\npath = \"state/db.sqlite3\"\n\
         [[zone]]\nname = \"dedyn.example\"\nfile = \"zones/dedyn.example.zone\"\ninclude = \"static\"\n",
    );
    write(
        &d.join("etc/static"),
        "ns1.dedyn.example. 60 IN A 192.0.2.53\n",
    );
    let elsewhere = d.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let c = cfg.to_str().unwrap();

    let o = cli_in(&elsewhere, &["--config", c, "user", "add", EMAIL], &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let db = d.join("etc/state/db.sqlite3");
    assert!(db.is_file(), "database not beside the config");
    assert!(
        o.stderr
            .contains(&format!("created a new database at {}", db.display())),
        "{}",
        o.stderr
    );
    assert!(std::fs::read_dir(&elsewhere).unwrap().next().is_none());

    // A second command from yet another directory uses the same database, silently.
    let o = cli_in(d, &["--config", c, "user", "list"], &[]);
    assert_eq!(
        (o.code, o.stdout.as_str(), o.stderr.as_str()),
        (0, "alice@example.org\n", "")
    );
    // The include file was found beside the config too.
    let o = cli_in(
        &elsewhere,
        &["--config", c, "zone", "render", "dedyn.example"],
        &[],
    );
    assert!(o.stdout.contains("192.0.2.53"), "{}{}", o.stdout, o.stderr);
    // A relative --config works the same.
    let o = cli_in(&d.join("etc"), &["--config", "config.toml", "check"], &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout.contains(&format!("database: {}", db.display())),
        "{}",
        o.stdout
    );
}

/// SPEC 12: the commands that only read never create a database: without one
/// they exit 1 naming the absolute path and the config file it came from.
#[test]
fn read_only_commands_never_create_a_database() {
    let dir = TempDir::new("ops");
    let d = dir.path();
    let cfg = d.join("etc/config.toml");
    write(&cfg, "[database]\npath = \"db.sqlite3\"\n");
    let c = cfg.to_str().unwrap();
    let db = d.join("etc/db.sqlite3");
    let commands: [&[&str]; 8] = [
        &["user", "list"],
        &["domain", "list"],
        &["token", "list"],
        &["records", "alice.dedyn.example"],
        &["zone", "render", "dedyn.example"],
        &["status", "alice.dedyn.example"],
        &["check"],
        &["backup", "copy.sqlite3"],
    ];
    for cmd in commands {
        let mut args = vec!["--config", c];
        args.extend_from_slice(cmd);
        let o = cli_in(d, &args, &[]);
        assert_eq!(o.code, 1, "{cmd:?}: {}", o.stderr);
        assert!(
            o.stderr
                .contains(&format!("no database at {}", db.display()))
                && o.stderr.contains(c),
            "{cmd:?}: {}",
            o.stderr
        );
        assert!(!db.exists(), "{cmd:?} created {}", db.display());
        assert_eq!(
            std::fs::read_dir(d).unwrap().count(),
            1,
            "{cmd:?} left files"
        );
    }
    // Without a config file: the default, relative to the working directory.
    let o = cli_in(d, &["user", "list"], &[]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains(&format!(
            "no database at {}",
            d.join("data/dedyn-update.sqlite3").display()
        )) && o.stderr.contains("built-in default"),
        "{}",
        o.stderr
    );
    assert!(!d.join("data").exists());
}

/// SPEC 12: `serve` creates the database and says so, with the absolute path.
#[test]
fn serve_says_when_it_creates_the_database() {
    let mut s = Server::start();
    assert!(
        s.log().contains(&format!(
            "creating a new database at {}",
            s.db_path().display()
        )),
        "{}",
        s.log()
    );
    s.stop();
    s.spawn();
    assert_eq!(
        s.log().matches("creating a new database").count(),
        1,
        "{}",
        s.log()
    );
}

/// A config in `d` (`[server]` lines and `[[zone]]` tables) with its database created.
fn instance(d: &Path, server: &str, zone: &str) -> String {
    let cfg = d.join("config.toml");
    write(
        &cfg,
        // Port 0: `check` binds every listener (SPEC 17), and 8080 may be taken.
        &format!("[server]\nhttp_listen = [\"127.0.0.1:0\"]\n{server}\n[database]\npath = \"db.sqlite3\"\n{zone}"),
    );
    let c = cfg.to_str().unwrap().to_string();
    if !d.join("db.sqlite3").exists() {
        let o = cli_in(d, &["--config", &c, "user", "add", EMAIL], &[]);
        assert_eq!(o.code, 0, "{}", o.stderr);
    }
    c
}

/// SPEC 12: `check` loads the TLS pair as `serve` would: a key of another
/// certificate and a file that is not PEM are problems naming the keys and files.
#[test]
fn check_loads_the_certificate_and_key() {
    let pki = Pki::new();
    let dir = TempDir::new("ops");
    let d = dir.path();
    let tls = |cert: &Path, key: &Path| {
        format!(
            "https_listen = [\"127.0.0.1:0\"]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            cert.display(),
            key.display()
        )
    };
    let (rsa, rsa_key, ec_key) = (pki.path("rsa.pem"), pki.path("rsa.key"), pki.path("ec.key"));
    let c = instance(d, &tls(&rsa, &rsa_key), "");
    let o = cli_in(d, &["--config", &c, "check"], &[]);
    assert_eq!(o.code, 0, "a matching pair passes: {}", o.stderr);

    let c = instance(d, &tls(&rsa, &ec_key), "");
    let o = cli_in(d, &["--config", &c, "check"], &[]);
    assert_check_names(
        &o,
        &[
            "server.tls_cert",
            &rsa.display().to_string(),
            &ec_key.display().to_string(),
        ],
    );

    let not_pem = d.join("cert.der");
    std::fs::write(&not_pem, b"\x30\x82\x01\x0a not a PEM file").unwrap();
    let c = instance(d, &tls(&not_pem, &rsa_key), "");
    let o = cli_in(d, &["--config", &c, "check"], &[]);
    assert_check_names(
        &o,
        &["server.tls_cert", &not_pem.display().to_string(), "PEM"],
    );
}

/// `file` must name a file: `""`, a path ending in `/` and an existing
/// directory stop the config, naming the key.
#[test]
fn check_refuses_a_zone_file_that_is_not_a_file() {
    let dir = TempDir::new("ops");
    let d = dir.path();
    for bad in ["", "zones/"] {
        let cfg = d.join("bad.toml");
        write(
            &cfg,
            &format!("[[zone]]\nname = \"dedyn.example\"\nfile = \"{bad}\"\n"),
        );
        let o = cli_in(d, &["--config", cfg.to_str().unwrap(), "check"], &[]);
        assert_eq!(o.code, 1, "{bad:?}");
        assert!(o.stderr.contains("zone[0].file"), "{bad:?}: {}", o.stderr);
        assert!(o.stderr.contains(cfg.to_str().unwrap()), "{}", o.stderr);
    }
    let c = instance(
        d,
        "",
        "[[zone]]\nname = \"dedyn.example\"\nfile = \"zones/dedyn.example\"\n",
    );
    // SPEC 17: a configured path that is a directory stops every command.
    std::fs::create_dir_all(d.join("zones/dedyn.example")).unwrap();
    let o = cli_in(d, &["--config", &c, "check"], &[]);
    assert_check_names(
        &o,
        &[
            "zone[0].file",
            &d.join("zones/dedyn.example").display().to_string(),
            "directory",
        ],
    );
}

/// SPEC 12: the zone directory must be writable by the user running `check`, not
/// only by mode bits, and the TLS key readable: a root-owned 0755 directory and a
/// root-owned 0600 key pass for root and fail for `nobody`, each problem on its
/// own line naming the key and the file.
#[test]
fn check_tries_writing_the_zone_directory_as_the_user_running_it() {
    if !require_root(
        "check_tries_writing_the_zone_directory_as_the_user_running_it",
        "to act as another user",
    ) {
        return;
    }
    let dir = TempDir::new("ops");
    let d = dir.path();
    let bin = nobody_sandbox(d);
    let zones_a = d.join("zones-a");
    let zones_b = d.join("zones-b");
    for p in [&zones_a, &zones_b] {
        std::fs::create_dir(p).unwrap();
    }
    let pki = Pki::new();
    let (cert, key) = (d.join("cert.pem"), d.join("key.pem"));
    std::fs::copy(pki.path("rsa.pem"), &cert).unwrap();
    std::fs::copy(pki.path("rsa.key"), &key).unwrap();
    std::fs::set_permissions(&cert, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = d.join("config.toml");
    write(
        &cfg,
        "[server]\nhttp_listen = [\"127.0.0.1:0\"]\nhttps_listen = [\"127.0.0.1:0\"]\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n\
         [database]\npath = \"state/db.sqlite3\"\n\
         [[zone]]\nname = \"dedyn.example\"\nfile = \"zones-a/dedyn.example.zone\"\n\
         [[zone]]\nname = \"other.example\"\nfile = \"zones-b/sub/other.example.zone\"\n",
    );
    let as_nobody = |args: &[&str]| {
        let mut all = vec!["--config", cfg.to_str().unwrap()];
        all.extend_from_slice(args);
        as_nobody(d, &bin, &all)
    };
    let o = as_nobody(&["user", "add", EMAIL]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = as_nobody(&["check"]);
    assert_check_names(
        &o,
        &[
            "zone[0].file",
            &zones_a.display().to_string(),
            "not writable",
        ],
    );
    assert_check_names(
        &o,
        &[
            "zone[1].file",
            &zones_b.display().to_string(),
            "not writable",
        ],
    );
    assert_check_names(&o, &["server.tls_key", &key.display().to_string()]);
    assert_eq!(
        o.stderr.lines().count(),
        4,
        "three problems and the summary: {}",
        o.stderr
    );
    // The mode bits alone would have said "writable" for the owner: root passes.
    let o = cli_in(d, &["--config", cfg.to_str().unwrap(), "check"], &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    // Nothing was left behind by the write tries.
    assert_eq!(std::fs::read_dir(&zones_a).unwrap().count(), 0);
}

/// `check --reload` runs the reload command once per zone and, with
/// `verify_server`, waits until the nameserver serves the published serial.
#[test]
fn check_reload_runs_the_reload_command_and_waits_for_the_serial() {
    let rig = Rig::start_verified(Kind::Nsd, Setup::default(), |reload, dir| {
        format!("touch {}/reloaded && {reload}", dir.display())
    });
    let marker = rig.dir.path().join("reloaded");
    rig.server.wait_until(
        "the first publication",
        std::time::Duration::from_secs(10),
        || marker.exists(),
    );
    std::fs::remove_file(&marker).unwrap();
    let o = rig.server.cli(&["check", "--reload"]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert!(
        o.stdout
            .contains("zone dedyn.example: reload command ran; 127.0.0.1:")
            && o.stdout.contains("serves the published serial"),
        "{}",
        o.stdout
    );
    assert!(marker.exists(), "the reload command did not run");

    // A reload command that fails is named, with the zone.
    let cfg = std::fs::read_to_string(&rig.server.config).unwrap();
    let start = cfg.find("reload_command").unwrap();
    let end = start + cfg[start..].find('\n').unwrap();
    let failing = rig.server.dir.path().join("failing.toml");
    std::fs::write(
        &failing,
        format!(
            "{}reload_command = \"exit 3\"{}",
            &cfg[..start],
            &cfg[end..]
        ),
    )
    .unwrap();
    let o = cli_in(
        rig.server.dir.path(),
        &["--config", failing.to_str().unwrap(), "check", "--reload"],
        &[],
    );
    assert_check_names(&o, &["dns.reload_command", "dedyn.example", "exit 3"]);
}

/// `config set` (the nameserver scripts' [dns] step): the key's line changes, every
/// other line and the file's mode stay; a link is followed, not replaced; a result
/// that would not load writes nothing and names the key.
#[test]
fn config_set_changes_only_the_keys_and_refuses_what_would_not_load() {
    let d = TempDir::new("config-set");
    let packaged =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/data/deb/config.toml"))
            .unwrap();
    let real = d.path().join("etc/config.toml");
    write(&real, &packaged);
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
    let link = d.path().join("config.toml");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let set = |args: &[&str]| {
        let mut all = vec!["--config", link.to_str().unwrap(), "config", "set"];
        all.extend_from_slice(args);
        cli_in(d.path(), &all, &[])
    };

    let o = set(&[
        "dns.reload_command",
        "nsd-control reload {zone}",
        "dns.verify_server",
        "127.0.0.1:53",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let real_abs = std::fs::canonicalize(&real).unwrap();
    assert_eq!(
        o.stdout,
        format!(
            "{r}: dns.reload_command = \"nsd-control reload {{zone}}\"\n\
             {r}: dns.verify_server = \"127.0.0.1:53\"\n",
            r = real_abs.display()
        )
    );
    let edited = std::fs::read_to_string(&real).unwrap();
    let want = packaged.replacen(
        &packaged[packaged.find("reload_command = ").unwrap()..]
            .lines()
            .next()
            .unwrap()
            .to_string(),
        "reload_command = \"nsd-control reload {zone}\"\nverify_server = \"127.0.0.1:53\"",
        1,
    );
    assert_eq!(edited, want);
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    let mode = std::fs::metadata(&real).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    // The edited file loads, with the keys set.
    let o = cli_in(
        d.path(),
        &["--config", link.to_str().unwrap(), "nameserver", "nsd"],
        &[],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);

    // A value of the wrong type, an unknown key, a value `validate` refuses:
    // exit 1, the key named, the file untouched and no temporary file left.
    for (args, names) in [
        (
            &["server.workers", "many"][..],
            "server.workers: invalid type",
        ),
        (&["dns.no_such_key", "1"], "unknown field `no_such_key`"),
        (&["server.workers", "0"], "workers"),
    ] {
        let o = set(args);
        assert_eq!(o.code, 1, "{args:?}: {}", o.stdout);
        assert!(
            o.stderr.contains("nothing written") && o.stderr.contains(names),
            "{args:?}: {}",
            o.stderr
        );
        assert_eq!(std::fs::read_to_string(&real).unwrap(), edited, "{args:?}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(real.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["config.toml"]);

    // No file to edit: a usage error.
    let o = cli_in(d.path(), &["config", "set", "dns.ttl", "60"], &[]);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("--config"), "{}", o.stderr);
}

/// `check` on a zone directory that is a read-only mount: root passes every mode
/// check, only the write try finds it (SPEC 12). The mount lives in a private mount
/// namespace (`unshare -m`), so the machine never sees it.
#[test]
fn check_finds_a_read_only_mount() {
    if !require_root("check_finds_a_read_only_mount", "to mount") {
        return;
    }
    let dir = TempDir::new("ops-ro");
    let d = dir.path();
    let zones = d.join("zones");
    std::fs::create_dir(&zones).unwrap();
    let cfg = d.join("config.toml");
    write(
        &cfg,
        "[server]\nhttp_listen = [\"127.0.0.1:0\"]\n[database]\npath = \"db.sqlite3\"\n\
         [[zone]]\nname = \"dedyn.example\"\nfile = \"zones/dedyn.example.zone\"\n",
    );
    let o = cli_in(
        d,
        &["--config", cfg.to_str().unwrap(), "user", "add", EMAIL],
        &[],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let check_in_namespace = |read_only: bool| {
        let z = zones.display().to_string();
        let mount = if read_only {
            format!("mount --bind '{z}' '{z}' && mount -o remount,bind,ro '{z}' && ")
        } else {
            String::new()
        };
        let out = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(format!("{mount}exec \"$0\" --config \"$1\" check"))
            .arg(BIN)
            .arg(&cfg)
            .current_dir(d)
            .env("RUST_LOG", "warn")
            .output()
            .expect("unshare");
        CliOutput::from(out)
    };
    let o = check_in_namespace(false);
    assert_eq!(
        o.code, 0,
        "the same check without the mount passes: {}",
        o.stderr
    );
    let o = check_in_namespace(true);
    assert_check_names(
        &o,
        &[
            "zone[0].file",
            &zones.display().to_string(),
            "not writable",
            "Read-only file system",
        ],
    );
}
