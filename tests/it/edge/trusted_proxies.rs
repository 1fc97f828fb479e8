//! SPEC 17 "Trusted proxies": a proxy is trusted by the socket it connects
//! through. A local user on the loopback TCP listener is not the proxy, whatever
//! `X-Forwarded-For` it sends; a `unix:` listener named in `trusted_proxies` is,
//! and only who may open its file can connect. The real binary over real
//! sockets, and the README's nginx recipe run by a real nginx.

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::proc::{require_root, tool};
use crate::common::readme::recipe;
use crate::common::server::{parse_response, token, Response, Server, Setup};

const ALICE: &str = "alice.dedyn.example";
const EMAIL: &str = "alice@example.org";

/// One request over the `unix:` listener at `socket` (`Connection: close`).
fn unix_get(socket: &Path, target: &str, headers: &[(&str, &str)]) -> Response {
    let mut s = UnixStream::connect(socket).expect("connect to the unix: listener");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut req =
        format!("GET {target} HTTP/1.1\r\nHost: update.example.net\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    parse_response(&raw)
        .unwrap_or_else(|| panic!("unparsable response: {:?}", String::from_utf8_lossy(&raw)))
}

/// A server with `socket` as a trusted `unix:` listener, and `extra` lines for `[server]`.
fn behind_socket(socket: &Path, extra: &[&str]) -> Server {
    let mut server = vec![format!("trusted_proxies = [\"unix:{}\"]", socket.display())];
    server.extend(extra.iter().map(|l| l.to_string()));
    Server::start_with(Setup {
        server,
        http_unix: vec![socket.to_path_buf()],
        ..Setup::default()
    })
}

/// The E4 recipe: with the README's old proxy setup (loopback trusted on the
/// TCP listener), any local user sent `X-Forwarded-For` and dodged the
/// failed-authentication lock-out with a fresh address per try (30 × 401).
/// Now a loopback peer's header is ignored: the 11th bad token is locked out.
#[test]
fn a_local_users_forwarded_for_on_the_loopback_listener_is_ignored() {
    let s = Server::start_with(Setup {
        server: vec!["trusted_proxies = [\"127.0.0.1/32\", \"::1/128\"]".into()],
        rate_limit: vec![
            "dyndns_per_domain = \"\"".into(),
            "failed_auth_per_ip = \"10/60s\"".into(),
        ],
        ..Setup::default()
    });
    let secret = s.provision(EMAIL, ALICE);
    let statuses: Vec<u16> = (0..30)
        .map(|i| {
            let xff = format!("198.51.100.{}", i + 1);
            s.get(
                "/",
                &[
                    ("Authorization", &token("not-a-token-of-anyone")),
                    ("X-Forwarded-For", xff.as_str()),
                ],
            )
            .status
        })
        .collect();
    assert_eq!(statuses[..10], [401; 10], "{statuses:?}");
    assert_eq!(statuses[10..], [429; 20], "{statuses:?}");
    assert!(
        s.log().contains("locking out 127.0.0.1"),
        "the local user is locked out, not the addresses it named:\n{}",
        s.log()
    );
    // Nor does the header pick the published address (the lock-out is per
    // address: the same request from [::1], a loopback peer just the same).
    let r = s.get6(
        "/",
        &[
            ("Authorization", &token(&secret)),
            ("X-Forwarded-For", "203.0.113.9"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(s.records(ALICE), ["AAAA ::1"]);
    assert!(
        s.log().contains("trusted_proxies_allow_local_users"),
        "serve warns about the loopback trust at start:\n{}",
        s.log()
    );
}

/// `check` refuses trusting loopback on a TCP listener, naming the keys, and
/// passes once `trusted_proxies_allow_local_users` says it is meant.
#[test]
fn check_refuses_loopback_trust_unless_local_users_are_allowed() {
    let trusting = |extra: &[&str]| {
        let mut server = vec!["trusted_proxies = [\"10.0.0.0/8\", \"127.0.0.1/32\"]".to_string()];
        server.extend(extra.iter().map(|l| l.to_string()));
        Server::start_with(Setup {
            server,
            ..Setup::default()
        })
    };
    let s = trusting(&[]);
    let out = s.cli(&["check"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("server.trusted_proxies trusts 127.0.0.1")
            && out
                .stderr
                .contains("trusted_proxies_allow_local_users = true")
            && out.stderr.contains("unix:"),
        "{}",
        out.stderr
    );
    let s = trusting(&["trusted_proxies_allow_local_users = true"]);
    let out = s.cli(&["check"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    // A network without loopback in it is no problem.
    let s = Server::start_with(Setup {
        server: vec!["trusted_proxies = [\"10.0.0.0/8\"]".into()],
        ..Setup::default()
    });
    let out = s.cli(&["check"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

/// Through a trusted `unix:` listener the client is the proxy's last hop: what
/// `myip` defaults to and what the log says; a request without a
/// usable header is refused and writes nothing.
#[test]
fn requests_on_a_trusted_unix_listener_take_the_client_from_forwarded_for() {
    let dir = crate::common::proc::TempDir::new("proxy-sock");
    let socket = dir.path().join("http.sock");
    let s = behind_socket(&socket, &[]);
    let secret = s.provision(EMAIL, ALICE);
    let auth = token(&secret);
    let r = unix_get(
        &socket,
        "/",
        &[
            ("Authorization", &auth),
            ("X-Forwarded-For", "1.1.1.1, 203.0.113.9"),
        ],
    );
    assert_eq!((r.status, r.body.as_str()), (200, "good"));
    assert_eq!(s.records(ALICE), ["A 203.0.113.9"]);
    s.wait_until("the request logged", Duration::from_secs(5), || {
        s.log().contains("203.0.113.9 http GET 200")
    });
    for headers in [vec![], vec![("X-Forwarded-For", "unknown")]] {
        let mut h = vec![("Authorization", auth.as_str())];
        h.extend(headers);
        let r = unix_get(&socket, "/?myip=192.0.2.1", &h);
        assert_eq!(r.status, 400, "{h:?}: {}", r.body);
        assert!(r.body.contains("X-Forwarded-For"), "{}", r.body);
    }
    assert_eq!(s.records(ALICE), ["A 203.0.113.9"]);
    // The TCP listener of the same server still takes its peers at face value.
    let r = s.get(
        "/",
        &[
            ("Authorization", &auth),
            ("X-Forwarded-For", "198.51.100.1"),
        ],
    );
    assert_eq!((r.status, r.body.as_str()), (200, "good"));
    assert_eq!(s.records(ALICE), ["A 127.0.0.1"]);
}

/// The socket file gets `unix_mode` and `unix_group`; a user outside that
/// group cannot connect; a stopped server leaves no socket file behind.
#[test]
fn the_unix_listener_gets_its_mode_and_group_and_other_users_stay_out() {
    if !require_root(
        "the_unix_listener_gets_its_mode_and_group_and_other_users_stay_out",
        "to give the socket to another group and connect as another user",
    ) {
        return;
    }
    let dir = crate::common::proc::TempDir::new("proxy-mode");
    let socket = dir.path().join("http.sock");
    let mut s = behind_socket(
        &socket,
        &["unix_mode = \"0660\"", "unix_group = \"www-data\""],
    );
    let meta = std::fs::symlink_metadata(&socket).expect("socket file");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.mode() & 0o7777, 0o660);
    let www_data = Command::new("getent")
        .args(["group", "www-data"])
        .output()
        .expect("getent");
    let gid: u32 = String::from_utf8_lossy(&www_data.stdout)
        .split(':')
        .nth(2)
        .and_then(|g| g.trim().parse().ok())
        .expect("group www-data exists");
    assert_eq!(meta.gid(), gid);
    // The test dir is private to root: let the other users reach the socket file.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let as_user = |user: &str, group: &str| {
        Command::new("setpriv")
            .args([
                &format!("--reuid={user}"),
                &format!("--regid={group}"),
                "--clear-groups",
                "curl",
                "-sS",
                "--max-time",
                "5",
                "-H",
                "X-Forwarded-For: 192.0.2.1",
                "--unix-socket",
            ])
            .arg(&socket)
            .arg("http://update.example.net/")
            .stdin(Stdio::null())
            .output()
            .expect("setpriv curl")
    };
    let other = as_user("nobody", "nogroup");
    assert!(!other.status.success(), "nobody got in");
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("Permission denied")
            || String::from_utf8_lossy(&other.stderr).contains("Couldn't connect"),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );
    let proxy = as_user("www-data", "www-data");
    assert!(
        proxy.status.success() && String::from_utf8_lossy(&proxy.stdout).contains("badauth"),
        "group www-data reaches the service: {}{}",
        String::from_utf8_lossy(&proxy.stdout),
        String::from_utf8_lossy(&proxy.stderr)
    );
    s.stop();
    assert!(!socket.exists(), "the socket file is removed at stop");
}

/// A running nginx, stopped (master and workers, by PID) on drop.
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        crate::common::proc::stop_tree(&mut self.0, Duration::from_secs(5));
    }
}

/// The README's proxy config and nginx recipe, run by a real nginx proxying to
/// the `unix:` listener: a client on 127.0.0.2 is what gets published, an
/// address it writes itself is not.
#[test]
fn the_readme_nginx_recipe_brings_the_client_address_over_the_unix_socket() {
    if !require_root(
        "the_readme_nginx_recipe_brings_the_client_address_over_the_unix_socket",
        "to run nginx's workers as www-data, the README's socket group",
    ) {
        return;
    }
    let dir = crate::common::proc::TempDir::new("proxy-nginx");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let socket = dir.path().join("http.sock");
    let readme_socket = "/run/dedyn-update/http.sock";

    // The README's [server] lines, on the test's socket; the harness adds the
    // listener itself (and its TCP ones), so `http_listen` is checked, not copied.
    let config = recipe("proxy-config");
    let mut server = Vec::new();
    for line in config
        .lines()
        .filter(|l| !l.trim().is_empty() && *l != "[server]")
    {
        match line.split('=').next().map(str::trim) {
            Some("http_listen") => assert_eq!(
                line,
                format!("http_listen = [\"unix:{readme_socket}\"]"),
                "the recipe listens on its socket only"
            ),
            Some("https_listen") => {}
            _ => server.push(line.replace(readme_socket, &socket.display().to_string())),
        }
    }
    let s = Server::start_with(Setup {
        server,
        http_unix: vec![socket.clone()],
        ..Setup::default()
    });
    let secret = s.provision(EMAIL, ALICE);

    let pki = crate::common::edge::Pki::new();
    let port = crate::common::server::free_tcp("127.0.0.1")
        .expect("a free port")
        .port();
    let site = recipe("proxy-nginx")
        .replace("listen 443 ssl;", &format!("listen 127.0.0.1:{port} ssl;"))
        .replace("    listen [::]:443 ssl;\n", "")
        .replace(
            "/etc/letsencrypt/live/update.example.net/fullchain.pem",
            &pki.path("ec.pem").display().to_string(),
        )
        .replace(
            "/etc/letsencrypt/live/update.example.net/privkey.pem",
            &pki.path("ec.key").display().to_string(),
        )
        .replace(readme_socket, &socket.display().to_string());
    assert!(
        site.contains(&format!("proxy_pass http://unix:{}:;", socket.display())),
        "{site}"
    );
    let ngx = dir.path().join("nginx");
    std::fs::create_dir_all(ngx.join("logs")).expect("nginx dir");
    std::fs::write(
        ngx.join("nginx.conf"),
        format!(
            "user www-data;\nworker_processes 1;\npid {0}/nginx.pid;\nerror_log {0}/logs/error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n    access_log off;\n{site}}}\n",
            ngx.display()
        ),
    )
    .expect("nginx.conf");
    let child = Command::new(tool("nginx"))
        .arg("-p")
        .arg(&ngx)
        .arg("-c")
        .arg(ngx.join("nginx.conf"))
        .arg("-e")
        .arg(ngx.join("logs/error.log"))
        .args(["-g", "daemon off;"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    let _nginx = Nginx(child);
    let nginx_log = || crate::common::server::read(&ngx.join("logs/error.log"));
    let url = |target: &str| format!("https://127.0.0.1:{port}{target}");
    let curl = |extra: &[&str], target: &str| {
        let mut args: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        args.push(url(target));
        crate::common::edge::curl(&pki.path("ca.pem"), &args)
    };
    // nginx is up once it answers (bounded in time).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !curl(&["-o", "/dev/null"], "/").0 {
        assert!(
            Instant::now() < deadline,
            "nginx did not come up:\n{}",
            nginx_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let auth = format!("Authorization: Token {secret}");
    let (ok, body, err) = curl(
        &[
            "--interface",
            "127.0.0.2",
            "-H",
            &auth,
            "-H",
            "X-Forwarded-For: 198.51.100.66",
        ],
        "/",
    );
    assert!(ok, "{err}");
    assert_eq!(body, "good", "{}", nginx_log());
    assert_eq!(s.records(ALICE), ["A 127.0.0.2"]);
    s.wait_until("the request logged", Duration::from_secs(5), || {
        s.log().contains("127.0.0.2 http GET 200")
    });
}

/// The docs' systemd drop-in for the socket fits the config recipe and the
/// unit: systemd creates the socket's directory (`RuntimeDirectory`), gives
/// the service the socket's group (`SupplementaryGroups`), and lets it hand
/// the socket to that group although the unit filters out `@privileged`
/// (which holds `@chown`). systemd itself is not running where the tests
/// run, so this reads the three texts against each other.
#[test]
fn the_proxy_dropin_fits_the_config_recipe_and_the_unit() {
    let dropin = recipe("proxy-dropin");
    let config = recipe("proxy-config");
    let unit =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/dedyn-update.service"))
            .expect("the unit");
    let value = |text: &str, key: &str, sep: char| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.split_once(sep))
            .filter(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim().trim_matches('"').to_string())
            .collect()
    };
    assert_eq!(dropin.lines().next(), Some("[Service]"), "{dropin}");
    let listen = value(&config, "http_listen", '=');
    let socket = listen[0]
        .trim_matches(|c| c == '[' || c == ']' || c == '"')
        .strip_prefix("unix:")
        .unwrap_or_else(|| panic!("a unix: listener: {config}"))
        .to_string();
    let runtime = value(&dropin, "RuntimeDirectory", '=');
    assert_eq!(
        Path::new(&socket).parent(),
        Some(Path::new("/run").join(&runtime[0]).as_path()),
        "systemd creates the socket's directory: {dropin}"
    );
    let group = value(&config, "unix_group", '=');
    assert_eq!(
        value(&dropin, "SupplementaryGroups", '='),
        group,
        "the service is in the socket's group: {dropin}"
    );
    assert!(
        unit.lines().any(|l| l == "SystemCallFilter=~@privileged"),
        "the unit filters @privileged (so @chown needs allowing back)"
    );
    assert!(
        value(&dropin, "SystemCallFilter", '=')
            .iter()
            .any(|v| v.split_whitespace().any(|s| s == "@chown")),
        "the drop-in allows @chown back: {dropin}"
    );
    assert_eq!(
        value(&config, "trusted_proxies", '='),
        vec![format!("[\"unix:{socket}\"]").trim_matches('"').to_string()],
        "the socket is the trusted proxy: {config}"
    );
}
