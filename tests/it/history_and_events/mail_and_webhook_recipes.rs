//! docs/events.md's recipes, run as written: the mail recipe through Debian's
//! msmtp as `sendmail` to a loopback SMTP sink (python3-aiosmtpd), the webhook
//! recipe with curl to a loopback HTTP listener of the test's own (only its URL
//! is replaced). Needs tests/install-deps.sh.

use crate::common::proc::{tool, TempDir};
use crate::common::readme::recipe;
use crate::common::server::{free_tcp, Server, Setup};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const EMAIL: &str = "alice@example.org";
const ALICE: &str = "alice.dedyn.example";
const ARRIVE: Duration = Duration::from_secs(30);

/// The recipe block as an executable file in `dir`.
fn install(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write the recipe");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    p
}

fn start(command: &Path, wrapper: Vec<String>) -> (Server, String) {
    let s = Server::start_with(Setup {
        sections: vec![format!("[events]\ncommand = \"{}\"", command.display())],
        wrapper,
        ..Setup::default()
    });
    let tok = s.provision(EMAIL, ALICE);
    (s, tok)
}

fn change(s: &Server, tok: &str, ip: &str) {
    let r = s.get(
        &format!("/?hostname={ALICE}&myipv4={ip}"),
        &[("Authorization", &format!("Token {tok}"))],
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

/// The SMTP sink: aiosmtpd printing each message it gets; stopped on drop.
struct Sink {
    child: Child,
    out: PathBuf,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn smtp_sink(dir: &Path) -> (Sink, u16) {
    let port = free_tcp("127.0.0.1").expect("a free port").port();
    let out = dir.join("smtp.out");
    let child = Command::new("/usr/bin/python3")
        .args(["-u", "-m", "aiosmtpd", "-n", "-l"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-c", "aiosmtpd.handlers.Debugging"])
        .stdout(std::fs::File::create(&out).expect("sink output"))
        .stderr(Stdio::null())
        .spawn()
        .expect("start python3 -m aiosmtpd (tests/install-deps.sh)");
    let sink = Sink { child, out };
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the SMTP sink did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    (sink, port)
}

/// docs/events.md "A mail for each change": the recipe verbatim, `sendmail`
/// being Debian's msmtp (as msmtp-mta installs it) relaying to the sink.
#[test]
fn the_mail_recipe_sends_a_mail_per_change() {
    let d = TempDir::new("evmail");
    let (sink, port) = smtp_sink(d.path());
    // The service user's home and PATH: msmtp's config, and sendmail = msmtp.
    let home = d.path().join("home");
    let bin = d.path().join("bin");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    let rc = home.join(".msmtprc");
    std::fs::write(
        &rc,
        format!("account default\nhost 127.0.0.1\nport {port}\nfrom dedyn-update@localhost\n"),
    )
    .unwrap();
    std::fs::set_permissions(&rc, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink(tool("msmtp"), bin.join("sendmail")).unwrap();
    let cmd = install(d.path(), "dedyn-event-mail", &recipe("events-mail"));
    let wrapper = vec![
        "env".to_string(),
        format!("HOME={}", home.display()),
        format!("PATH={}:/usr/bin:/bin", bin.display()),
    ];
    let (s, tok) = start(&cmd, wrapper);
    change(&s, &tok, "192.0.2.1");
    let subject = format!("Subject: dedyn-update: {ALICE} changed");
    s.wait_until("the mail at the sink", ARRIVE, || {
        std::fs::read_to_string(&sink.out).is_ok_and(|t| t.contains(&subject))
    });
    let mail = std::fs::read_to_string(&sink.out).unwrap();
    assert!(mail.contains("To: root@localhost"), "{mail}");
    assert!(
        mail.contains(&format!(
            "{{\"event\":\"changed\",\"name\":\"{ALICE}\",\"type\":\"A\",\"old\":[],\"new\":[\"192.0.2.1\"]"
        )),
        "{mail}"
    );
}

/// A loopback HTTP listener: each request's body, answered 200.
fn hook_listener() -> (u16, mpsc::Receiver<(String, String)>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Bounded: a few requests, each read within a deadline.
        for conn in l.incoming().take(4) {
            let Ok(mut c) = conn else { return };
            let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head, body) = loop {
                let Ok(n) = c.read(&mut chunk) else {
                    break (String::new(), String::new());
                };
                if n == 0 {
                    break (String::new(), String::new());
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        break (head.to_string(), body.to_string());
                    }
                }
            };
            let _ =
                c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            if tx.send((head, body)).is_err() {
                return;
            }
        }
    });
    (port, rx)
}

/// docs/events.md "A webhook": the recipe with its URL pointing at the test's
/// listener, which gets each event as a JSON POST.
#[test]
fn the_webhook_recipe_posts_each_change() {
    let d = TempDir::new("evhook");
    let (port, rx) = hook_listener();
    let text = recipe("events-webhook");
    assert!(text.contains("https://hooks.example.net/dedyn"), "{text}");
    let text = text.replace(
        "https://hooks.example.net/dedyn",
        &format!("http://127.0.0.1:{port}/dedyn"),
    );
    let cmd = install(d.path(), "dedyn-event-webhook", &text);
    let (_s, tok) = start(&cmd, vec![]);
    change(&_s, &tok, "192.0.2.1");
    change(&_s, &tok, "192.0.2.2");
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(rx.recv_timeout(ARRIVE).expect("a POST from the recipe"));
    }
    for ((head, body), (old, new)) in got.iter().zip([
        ("[]", "[\"192.0.2.1\"]"),
        ("[\"192.0.2.1\"]", "[\"192.0.2.2\"]"),
    ]) {
        assert!(head.starts_with("POST /dedyn HTTP/1.1"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{head}"
        );
        assert!(
            body.contains(&format!("\"old\":{old},\"new\":{new},\"via\":\"http\"")),
            "{body}"
        );
    }
}
