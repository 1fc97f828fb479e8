//! Our signed answers, checked by the real clients: BIND's `nsupdate` and
//! Knot's `knsupdate` send an UPDATE to a socket here and must accept the
//! signed NOERROR, reject a forged MAC, and report NOTAUTH for a wrong key.
//! Skipped, loudly, where the client is not installed.

use super::key::{bind_key_file, Algorithm, Key};
use super::name::Name;
use super::tsig::{check_request, sign_answer, Checked};
use super::wire::{Message, Rcode};
use std::io::Write;
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn installed(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        eprintln!("SKIPPED: {tool} is not installed (Debian bind9-dnsutils / knot-dnsutils)");
    }
    found
}

/// How the test server answers the one UPDATE it receives.
enum Serve {
    /// Check with this key and answer NOERROR (or NOTAUTH), signed as SPEC 14 says.
    Honestly(Key),
    /// Answer NOERROR signed with the right key, then flip one MAC octet.
    ForgedMac(Key),
    /// Check with this key on a clock ten minutes fast: BADTIME.
    FastClock(Key),
}

/// Run `tool args…` against a one-shot server; returns whether it succeeded
/// and what it printed.
fn exchange(tool: &str, args: &[&str], serve: Serve) -> (bool, String) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let port = sock.local_addr().unwrap().port();
    let mut child = Command::new(tool)
        .args(args)
        .args(["-t", "3", "-r", "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let script = format!(
        "server 127.0.0.1 {port}\nzone dyn.example.\nupdate add host.dyn.example. 60 A 192.0.2.1\nsend\n"
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let mut buf = [0u8; 4096];
    let (n, peer) = sock.recv_from(&mut buf).unwrap();
    let wire = &buf[..n];
    let req = Message::parse(wire).unwrap();
    let (key, forge, clock) = match serve {
        Serve::Honestly(k) => (k, false, now()),
        Serve::ForgedMac(k) => (k, true, now()),
        Serve::FastClock(k) => (k, false, now() + 600),
    };
    let checked = check_request(wire, &req, clock, |n: &Name| {
        (*n == key.name).then(|| key.clone())
    })
    .unwrap();
    let rcode = match checked {
        Checked::Valid { .. } => Rcode::NoError,
        _ => Rcode::NotAuth,
    };
    let mut answer = sign_answer(Message::answer_to(&req, rcode).to_wire(), &checked, clock);
    if forge {
        let at = answer.len() - 10;
        answer[at] ^= 1;
    }
    sock.send_to(&answer, peer).unwrap();
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn secret() -> Vec<u8> {
    (100..132).collect()
}

fn key(name: &str) -> Key {
    Key {
        name: Name::from_text(name).unwrap(),
        algorithm: Algorithm::HmacSha256,
        secret: secret(),
    }
}

/// The key file `token add --tsig` will print, written where nsupdate reads it.
fn key_file(k: &Key) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "dedyn-dns-interop-{}-{}.key",
        std::process::id(),
        k.name
    ));
    std::fs::write(
        &path,
        bind_key_file(&k.name, k.algorithm, &k.secret_base64()),
    )
    .unwrap();
    path
}

#[test]
fn nsupdate_accepts_our_signed_answer_and_rejects_a_forged_one() {
    if !installed("nsupdate") {
        return;
    }
    let k = key("home.dyn.example");
    let file = key_file(&k);
    let f = file.to_str().unwrap();
    let (ok, out) = exchange("nsupdate", &["-k", f], Serve::Honestly(k.clone()));
    assert!(ok, "nsupdate refused our signed NOERROR: {out}");
    let (ok, out) = exchange("nsupdate", &["-k", f], Serve::ForgedMac(k.clone()));
    assert!(
        !ok && out.contains("tsig verify failure"),
        "nsupdate took a forged MAC: {out}"
    );
    let mut other = k.clone();
    other.secret[0] ^= 1;
    let (ok, out) = exchange("nsupdate", &["-k", f], Serve::Honestly(other));
    assert!(!ok && out.contains("NOTAUTH(BADSIG)"), "wrong key: {out}");
    let (ok, out) = exchange("nsupdate", &["-k", f], Serve::FastClock(k.clone()));
    eprintln!("nsupdate on BADTIME: {out}");
    assert!(!ok && out.contains("NOTAUTH(BADTIME)"), "BADTIME: {out}");
    let _ = std::fs::remove_file(file);
}

#[test]
fn knsupdate_accepts_our_signed_answer_and_rejects_a_forged_one() {
    if !installed("knsupdate") {
        return;
    }
    let k = key("home.dyn.example");
    let y = format!("hmac-sha256:home.dyn.example:{}", k.secret_base64());
    let (ok, out) = exchange("knsupdate", &["-y", &y], Serve::Honestly(k.clone()));
    assert!(
        ok && !out.contains("ERROR"),
        "knsupdate refused our signed NOERROR: {out}"
    );
    let (ok, out) = exchange("knsupdate", &["-y", &y], Serve::ForgedMac(k.clone()));
    assert!(
        !ok && out.contains("failed to verify TSIG"),
        "knsupdate took a forged MAC: {out}"
    );
    let mut other = k.clone();
    other.secret[0] ^= 1;
    let (ok, out) = exchange("knsupdate", &["-y", &y], Serve::Honestly(other));
    assert!(!ok && out.contains("BADSIG"), "wrong key: {out}");
    let (ok, out) = exchange("knsupdate", &["-y", &y], Serve::FastClock(k.clone()));
    eprintln!("knsupdate on BADTIME (exit ok: {ok}): {out}");
    assert!(!ok && out.contains("BADTIME"), "BADTIME: {out}");
}
