//! The frictions a new user met on the way from `apt install` to the first
//! `good` (issue 20), each as the behaviour that replaced it: messages that say
//! each thing once, admin blocks that work when pasted, files with the modes
//! their contents ask for, and a package that ships what the docs install.

use crate::common::proc::TempDir;
use crate::common::server::{cli_in, CliOutput};
use std::net::UdpSocket;
use std::path::Path;

const EMAIL: &str = "alice@example.org";

/// A config in `d` with one zone, its database path and `[dns]` lines, the
/// database created with one user.
fn instance(d: &Path, dns: &str) -> String {
    let cfg = d.join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[database]\npath = \"db.sqlite3\"\n[dns]\n{dns}\n\
             [[zone]]\nname = \"dyn.example.net\"\nfile = \"zones/dyn.example.net.zone\"\n"
        ),
    )
    .unwrap();
    std::fs::create_dir_all(d.join("zones")).unwrap();
    let c = cfg.to_str().unwrap().to_string();
    let o = cli_in(d, &["--config", &c, "user", "add", EMAIL], &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    c
}

fn run(d: &Path, config: &str, args: &[&str]) -> CliOutput {
    let mut all = vec!["--config", config];
    all.extend_from_slice(args);
    cli_in(d, &all, &[])
}

/// A loopback UDP socket that takes queries and never answers: a nameserver
/// that is down (or hung) as `status` and `check --reload` meet it.
fn silent_nameserver() -> (UdpSocket, String) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind a loopback UDP port");
    let addr = sock.local_addr().expect("its address").to_string();
    (sock, addr)
}

/// Was: "127.0.0.1:53: 127.0.0.1:53: no answer (Resource temporarily unavailable
/// (os error 11))". Now the address once, and what happened in words.
#[test]
fn status_with_the_nameserver_down_names_it_once() {
    let dir = TempDir::new("newcomer-status");
    let (_ns, addr) = silent_nameserver();
    let c = instance(dir.path(), &format!("verify_server = \"{addr}\""));
    let o = run(
        dir.path(),
        &c,
        &["domain", "add", "alice.dyn.example.net", "--owner", EMAIL],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = run(dir.path(), &c, &["status", "alice.dyn.example.net"]);
    let all = format!("{}{}", o.stdout, o.stderr);
    let line = all
        .lines()
        .find(|l| l.contains(&addr))
        .unwrap_or_else(|| panic!("no line names {addr}:\n{all}"));
    assert_eq!(line.matches(&addr).count(), 1, "{line}");
    assert!(line.contains("no answer within 2 s"), "{line}");
    assert!(!line.contains("os error"), "{line}");
    assert!(all.trim_end().ends_with("not yet served"), "{all}");
}

/// Was: "127.0.0.1:5353 still serves 127.0.0.1:5353: no answer …". Now: the
/// address once, that no serial came, and what to look at.
#[test]
fn check_reload_with_a_dead_verify_server_says_so_once() {
    let dir = TempDir::new("newcomer-check");
    let (_ns, addr) = silent_nameserver();
    let c = instance(
        dir.path(),
        &format!("reload_command = \"true\"\nreload_timeout_secs = 1\nverify_server = \"{addr}\""),
    );
    std::fs::write(dir.path().join("zones/dyn.example.net.zone"), "").unwrap();
    let o = run(dir.path(), &c, &["check", "--reload"]);
    assert_eq!(o.code, 1, "{}{}", o.stdout, o.stderr);
    let line = o
        .stderr
        .lines()
        .find(|l| l.contains("dns.verify_server"))
        .unwrap_or_else(|| panic!("no dns.verify_server line:\n{}", o.stderr));
    assert_eq!(line.matches(&addr).count(), 1, "{line}");
    assert!(!line.contains("still serves"), "{line}");
    assert!(
        line.contains("gave no SOA serial") && line.contains("no answer within"),
        "{line}"
    );
}

/// Was: "dyn.example.net does not lie below a configured zone (dyn.example.net)".
#[test]
fn domain_add_on_the_zone_apex_says_it_is_the_zone() {
    let dir = TempDir::new("newcomer-apex");
    let c = instance(dir.path(), "");
    let o = run(
        dir.path(),
        &c,
        &["domain", "add", "dyn.example.net", "--owner", EMAIL],
    );
    assert_ne!(o.code, 0);
    assert!(
        o.stderr
            .contains("dyn.example.net is a configured zone itself: register a name below it, e.g. alice.dyn.example.net"),
        "{}",
        o.stderr
    );
    assert!(!o.stderr.contains("does not lie below"), "{}", o.stderr);
    // Nothing was written.
    let o = run(dir.path(), &c, &["domain", "list"]);
    assert_eq!(o.stdout, "", "{}", o.stderr);
}

/// Was: the backup written with the admin shell's umask (0644 under umask 022),
/// although it holds token hashes. Now 0600, whatever the umask.
#[test]
fn backup_is_written_0600_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("newcomer-backup");
    let c = instance(dir.path(), "");
    let dest = dir.path().join("backup.sqlite3");
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 022 && exec \"$0\" --config \"$1\" backup \"$2\"")
        .arg(crate::common::server::BIN)
        .arg(&c)
        .arg(&dest)
        .env_remove("DEDYN_UPDATE_CONFIG")
        .output()
        .expect("run backup");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mode = std::fs::metadata(&dest)
        .expect("the backup")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "backup mode {:o}", mode & 0o777);
    // And it is a backup: restore takes it.
    let o = run(dir.path(), &c, &["restore", dest.to_str().unwrap()]);
    assert_eq!(o.code, 0, "{}", o.stderr);
}

/// The `.deb`'s assets (Cargo.toml `[package.metadata.deb]`) as `(source,
/// destination, mode)`.
fn deb_assets() -> Vec<(String, String, String)> {
    let cargo = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
    let start = cargo.find("assets = [").expect("deb assets in Cargo.toml");
    let end = start + cargo[start..].find("\n]").expect("end of the assets");
    cargo[start..end]
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('"').collect();
            (f.len() >= 7).then(|| (f[1].to_string(), f[3].to_string(), f[5].to_string()))
        })
        .collect()
}

/// Was: the lego/Traefik recipe said to install `data/acme-dns-hook.sh`, which
/// the package did not contain. Now the package ships it, executable, at the
/// path the recipe's `EXEC_PATH` names.
#[test]
fn the_package_ships_the_hook_the_lego_recipe_names() {
    let recipe = crate::common::readme::recipe("lego");
    let exec_path = recipe
        .lines()
        .find_map(|l| l.strip_prefix("export EXEC_PATH="))
        .expect("the lego recipe sets EXEC_PATH");
    let shipped = deb_assets()
        .into_iter()
        .find(|(src, _, _)| src == "data/acme-dns-hook.sh")
        .expect("data/acme-dns-hook.sh is a deb asset");
    assert_eq!(format!("/{}", shipped.1), exec_path);
    assert_eq!(shipped.2, "755");
}

/// Was: the packaged config 0644 root:root, the one from source 0640
/// root:dedyn-update. Now the package's is 0640 too, and postinst gives it the
/// group (tests/packages.sh checks the installed file).
#[test]
fn the_packaged_config_is_0640_with_the_services_group() {
    let config = deb_assets()
        .into_iter()
        .find(|(_, dest, _)| dest == "etc/dedyn-update/config.toml")
        .expect("the config is a deb asset");
    assert_eq!(config.2, "640");
    let postinst = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/data/deb/postinst"));
    assert!(
        postinst.contains("chgrp dedyn-update /etc/dedyn-update/config.toml"),
        "{postinst}"
    );
    let from_source = crate::common::readme::all_text();
    assert!(from_source.contains(
        "install -D -o root -g dedyn-update -m 0640 data/dedyn-update.example.toml /etc/dedyn-update/config.toml"
    ));
}

/// The token-policies block, as written (the service user and the installed
/// config aside): one command, and every policy stored.
#[test]
fn the_token_policies_block_makes_one_token_with_every_policy() {
    let block = crate::common::readme::recipe("token-policies");
    assert!(
        block.starts_with(
            "runuser -u dedyn-update -- dedyn-update --config /etc/dedyn-update/config.toml \\\n"
        ),
        "{block}"
    );
    // sh reads it as one command: every line but the last continues.
    let lines: Vec<&str> = block.lines().collect();
    assert!(lines[..lines.len() - 1].iter().all(|l| l.ends_with(" \\")));
    let dir = TempDir::new("newcomer-policies");
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, "[database]\npath = \"db.sqlite3\"\n").unwrap();
    let c = cfg.to_str().unwrap();
    for args in [
        &["user", "add", EMAIL][..],
        &["domain", "add", "alice.dedyn.example", "--owner", EMAIL],
    ] {
        let o = run(dir.path(), c, args);
        assert_eq!(o.code, 0, "{}", o.stderr);
    }
    let args = crate::common::readme::cli_args(&block);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run(dir.path(), c, &args);
    assert_eq!(o.code, 0, "{args:?}: {}", o.stderr);
    let list = run(dir.path(), c, &["token", "list"]).stdout;
    for want in [
        "192.0.2.0/24",
        "2001:db8::/32",
        "home.alice.dedyn.example",
        "v4",
        "router",
    ] {
        assert!(
            list.contains(want),
            "{want} missing from token list:\n{list}"
        );
    }
}

/// Was: `pip install certbot certbot-dns-acmedns`, which Debian 12 refuses
/// ("externally-managed-environment"). Now a virtual environment, with the
/// versions tests/it/acme/certbot_and_lego.rs installs and runs the certbot recipe with.
#[test]
fn the_certbot_install_block_makes_a_venv_with_the_tested_versions() {
    let block = crate::common::readme::recipe("certbot-install");
    assert!(block.contains("apt install python3-venv\n"), "{block}");
    assert!(block.contains("python3 -m venv /opt/certbot\n"), "{block}");
    let pip = format!(
        "/opt/certbot/bin/pip install {}\n",
        crate::common::acme::CERTBOT_PACKAGES.join(" ")
    );
    assert!(block.contains(&pip), "{pip} missing:\n{block}");
    assert!(!block.contains("\npip install"), "{block}");
    let all = crate::common::readme::all_text();
    assert!(
        !all.contains("`pip install certbot"),
        "a system-wide pip install is still shown"
    );
    assert!(all.contains("--test-cert"), "no way to try a staging CA");
}

/// What `dedyn-update nameserver KIND` creates outside dedyn-update's own
/// files: `(paths written or appended to, users added to group dedyn-update)`.
fn nameserver_leftovers(kind: &str) -> (Vec<String>, Vec<String>) {
    let dir = TempDir::new("newcomer-leftovers");
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        "[[zone]]\nname = \"dedyn.example\"\nfile = \"/var/lib/dedyn-update/zones/dedyn.example.zone\"\n",
    )
    .unwrap();
    let o = cli_in(
        dir.path(),
        &["--config", cfg.to_str().unwrap(), "nameserver", kind],
        &[],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let (mut paths, mut users) = (Vec::new(), Vec::new());
    for line in o.stdout.lines().filter(|l| !l.starts_with('#')) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["cat", ">", path, ..] | ["mkdir", "-p", path] => paths.push(path.to_string()),
            ["install", "-d", .., path] => paths.push(path.to_string()),
            ["usermod", "-aG", "dedyn-update", user] => users.push(user.to_string()),
            _ => {
                if let Some((_, appended)) = line.rsplit_once(" >> ") {
                    paths.push(appended.to_string());
                }
            }
        }
    }
    assert!(!paths.is_empty() && !users.is_empty(), "{}", o.stdout);
    (paths, users)
}

/// Was: purge left the nameserver-side config (NSD conf.d file, Knot include,
/// BIND include, the systemd drop-in, the group membership) and the docs never
/// said so. The uninstall section names everything each nameserver script
/// creates, and its NSD block removes all that the NSD script creates.
#[test]
fn uninstall_names_everything_the_nameserver_scripts_leave() {
    let ops = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md"))
        .unwrap();
    let start = ops
        .find("## Uninstall, and what it leaves")
        .expect("an uninstall section");
    let section = &ops[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    for kind in ["nsd", "knot", "bind"] {
        let (paths, users) = nameserver_leftovers(kind);
        for path in paths {
            assert!(section.contains(&path), "{kind}: {path} not named");
        }
        for user in users {
            assert!(
                section.contains(&format!("`{user}`")),
                "{kind}: user {user}"
            );
        }
    }
    assert!(section.contains("delgroup dedyn-update"));

    let block = crate::common::readme::recipe("uninstall-nsd");
    let (paths, users) = nameserver_leftovers("nsd");
    let removed: Vec<&str> = block
        .lines()
        .filter(|l| l.starts_with("rm "))
        .flat_map(|l| l.split_whitespace().skip(1).filter(|w| !w.starts_with('-')))
        .collect();
    for path in &paths {
        assert!(
            removed.iter().any(|r| path.starts_with(r)),
            "the NSD block leaves {path}:\n{block}"
        );
    }
    for user in users {
        assert!(
            block.contains(&format!("gpasswd -d {user} dedyn-update\n")),
            "{block}"
        );
    }
    for line in [
        "apt purge dedyn-update\n",
        "systemctl daemon-reload && systemctl restart nsd\n",
        "deluser dedyn-update && delgroup dedyn-update\n",
    ] {
        assert!(block.contains(line), "{line} missing:\n{block}");
    }
    let syntax = std::process::Command::new("bash")
        .args(["-n", "-c", &block])
        .status()
        .expect("bash -n");
    assert!(syntax.success(), "{block}");
}
