//! SPEC 13 "Logs": every request-supplied value is quoted and escaped, so no
//! request can forge a log line or make the README's fail2ban filter ban an
//! address other than the real client's. Checked with fail2ban's own
//! `fail2ban-regex` against the filter exactly as the README prints it.
mod common;
use common::readme::recipe;
use common::server::{basic, Server};
use std::process::Command;

/// The fail2ban filter from the README's Logging section, verbatim.
fn readme_filter() -> String {
    let block = recipe("fail2ban-filter");
    assert!(block.contains("failregex"), "not the filter: {block}");
    block
}

/// The failure ids (addresses) fail2ban-regex finds in `log` with the README's filter.
fn fail2ban_hosts(dir: &std::path::Path, log: &str) -> Vec<String> {
    let filter = dir.join("dedyn-update.conf");
    std::fs::write(&filter, readme_filter()).expect("write filter");
    let log_file = dir.join("f2b.log");
    std::fs::write(&log_file, log).expect("write log");
    let out = Command::new("fail2ban-regex")
        .args(["-o", "id"])
        .arg(&log_file)
        .arg(&filter)
        .output()
        .expect("fail2ban-regex (Debian package fail2ban) runs");
    assert!(
        out.status.success(),
        "fail2ban-regex failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Percent-encodes every byte outside unreserved ASCII.
fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn forged_log_lines_are_escaped_and_fail2ban_sees_only_the_real_client() {
    let s = Server::start();
    let token = s.provision("alice@example.org", "alice.dedyn.example");
    let forged = [
        "failed authentication from 203.0.113.77: x",
        "x\nfailed authentication from 203.0.113.78: y",
        "x\r\n2026-01-01T00:00:00Z WARN failed authentication from 203.0.113.79: z",
        "\u{2028}failed authentication from 203.0.113.80: \u{202e}x",
    ];
    // Each a failed authentication with credentials (counted, logged as WARN):
    // the username is not the owner's (query parameters: a Basic username
    // cannot hold the ':' the forgery needs).
    for user in forged {
        let target = format!(
            "/?hostname=alice.dedyn.example&username={}&password={token}",
            form_encode(user)
        );
        let r = s.get(&target, &[]);
        assert_eq!(r.status, 401, "{user:?}: {}", r.body);
    }
    let r = s.get(
        "/?hostname=alice.dedyn.example",
        &[(
            "Authorization",
            &basic("failed authentication from 203.0.113.81", "x"),
        )],
    );
    assert_eq!(r.status, 401);
    // Refused for other reasons, with request text in the INFO line.
    let auth = basic("", &token);
    let h = [("Authorization", auth.as_str())];
    let bad_name = "/?hostname=failed+authentication+from+203.0.113.82%3A+x";
    assert_eq!(s.get(bad_name, &h).status, 400);
    let key = "/?myipv4:failed+authentication+from+203.0.113.83%3A=1.2.3.4";
    assert_eq!(s.get(key, &h).status, 400);

    let expected_failures = forged.len() + 1;
    s.wait_until(
        "every request logged",
        std::time::Duration::from_secs(5),
        || s.log().matches(" WARN failed authentication from ").count() >= expected_failures,
    );
    let log = s.log();
    common::server::assert_log_not_forged(&log, "127.0.0.1");
    assert!(
        log.contains("username 'failed authentication from 203.0.113.77: x' is not the owner"),
        "the forged username is shown quoted:\n{log}"
    );
    assert!(log.contains("'x\\u{a}failed authentication from 203.0.113.78: y'"));
    assert!(log.contains("\\u{2028}failed authentication from 203.0.113.80: \\u{202e}x"));

    let hosts = fail2ban_hosts(s.dir.path(), &log);
    assert_eq!(
        hosts,
        vec!["127.0.0.1".to_string(); expected_failures],
        "fail2ban must find exactly the real client once per failed authentication"
    );
}

#[test]
fn every_format_character_of_a_request_is_escaped_in_the_log() {
    // SPEC 17: tag characters (U+E0041…), musical and Arabic format controls
    // (U+1D173, U+0600, U+06DD) are invisible in a terminal: raw, they let a
    // request hide text in a log line.
    let s = Server::start();
    let token = s.provision("alice@example.org", "alice.dedyn.example");
    let hidden = "x\u{e0041}\u{e0042}\u{1d173}\u{0600}\u{06dd}y";
    let target = format!(
        "/?hostname=alice.dedyn.example&username={}&password={token}",
        form_encode(hidden)
    );
    assert_eq!(s.get(&target, &[]).status, 401);
    s.wait_until(
        "the failure logged",
        std::time::Duration::from_secs(5),
        || s.log().contains(" WARN failed authentication from "),
    );
    let log = s.log();
    assert!(
        log.contains("'x\\u{e0041}\\u{e0042}\\u{1d173}\\u{600}\\u{6dd}y'"),
        "each format character is written as an escape:\n{log}"
    );
    for c in hidden.chars().filter(|c| !c.is_ascii()) {
        assert!(
            !log.contains(c),
            "{:x} reached the log raw:\n{log}",
            c as u32
        );
    }
}
