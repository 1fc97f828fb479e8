//! SPEC 13 "Logs": every request-supplied value is quoted and escaped, so no
//! request can forge a log line or make the README's fail2ban filter ban an
//! address other than the real client's. Checked with fail2ban's own
//! `fail2ban-regex` against the filter exactly as the README prints it, over
//! the log as fail2ban reads it from a file and from the journal (SPEC 17).
use crate::common::readme::recipe;
use crate::common::server::{basic, Server};
use std::path::Path;
use std::process::{Command, Stdio};

/// The fail2ban filter from the Logging section of docs/operations.md, verbatim.
fn readme_filter() -> String {
    let block = recipe("fail2ban-filter");
    assert!(block.contains("failregex"), "not the filter: {block}");
    block
}

/// How fail2ban gets the log.
#[derive(Clone, Copy, Debug)]
enum Form {
    /// A file of the service's stderr: fail2ban finds and cuts the timestamp.
    File,
    /// `backend = systemd`: each line is a journal entry's MESSAGE, which
    /// fail2ban formats as `HOST IDENT[PID]: MESSAGE` with the date apart.
    Journal,
}

/// fail2ban's own journal formatting (`FilterSystemd.formatJournalEntry`) of
/// each stdin line as the MESSAGE of an entry from `dedyn-update[PID]` on host
/// `vps`, printed as the text its failregex is applied to (the tuple's first
/// and last part, `Regex._tupleLinesBuf`). The module imports systemd's
/// journal binding at load time, which formatting does not use: a stand-in
/// takes its place where python3-systemd is not installed.
const JOURNAL_FORMAT: &str = r#"
import datetime, sys, types
journal = types.ModuleType("systemd.journal")
journal.__version__ = "235"
systemd = types.ModuleType("systemd")
systemd.journal = journal
sys.modules.setdefault("systemd", systemd)
sys.modules.setdefault("systemd.journal", journal)
from fail2ban.server.filtersystemd import FilterSystemd

class Source:
    jailName = "dedyn-update"
    def getLogEncoding(self):
        return "UTF-8"
    getJrnEntTime = FilterSystemd.getJrnEntTime

now = datetime.datetime.now()
for message in sys.stdin.read().splitlines():
    entry = {"_HOSTNAME": "vps", "SYSLOG_IDENTIFIER": "dedyn-update",
             "_PID": int(sys.argv[1]), "MESSAGE": message, "__REALTIME_TIMESTAMP": now}
    (line, _date) = FilterSystemd.formatJournalEntry(Source(), entry)
    print(line[0] + line[2])
"#;

/// `log` (the service's stderr) as fail2ban's systemd backend hands it to the filter.
fn as_journal(dir: &Path, log: &str, pid: u32) -> String {
    let script = dir.join("journal_format.py");
    std::fs::write(&script, JOURNAL_FORMAT).expect("write script");
    // The Python that fail2ban is installed for: the one its tools run under.
    let regex_tool = crate::common::proc::tool("fail2ban-regex");
    let shebang = std::fs::read_to_string(&regex_tool).expect("read fail2ban-regex");
    let python = shebang
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("#!"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or("/usr/bin/python3")
        .to_string();
    let mut child = Command::new(python)
        .arg(&script)
        .arg(pid.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut stdin = child.stdin.take().expect("stdin");
    std::io::Write::write_all(&mut stdin, log.as_bytes()).expect("feed the log");
    drop(stdin);
    let out = child.wait_with_output().expect("python3 ends");
    assert!(
        out.status.success(),
        "fail2ban's journal formatting failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// The failure ids (addresses) fail2ban-regex finds in `log` with the README's filter.
fn fail2ban_hosts(dir: &Path, log: &str, form: Form) -> Vec<String> {
    let filter = dir.join("dedyn-update.conf");
    std::fs::write(&filter, readme_filter()).expect("write filter");
    let log_file = dir.join("f2b.log");
    std::fs::write(&log_file, log).expect("write log");
    let mut cmd = Command::new("fail2ban-regex");
    cmd.args(["-o", "id"]);
    if let Form::Journal = form {
        // The journal backend gives the date apart and never looks for one in
        // the line; `{NONE}` makes fail2ban-regex do the same with a file.
        cmd.args(["-d", "{NONE}"]);
    }
    let out = cmd
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

#[test]
fn the_readme_filter_is_the_one_the_package_ships() {
    assert_eq!(
        readme_filter(),
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/data/fail2ban/dedyn-update.conf"
        )),
        "README.md's fail2ban-filter block and data/fail2ban/dedyn-update.conf differ"
    );
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

/// Failed authentications whose usernames and names try to forge a log line
/// or an address, and requests refused with request text in the INFO line;
/// checks the escaping and returns how many failed authentications were logged.
fn send_forgeries(s: &Server) -> usize {
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
    crate::common::server::assert_log_not_forged(&log, "127.0.0.1");
    assert!(
        log.contains("username 'failed authentication from 203.0.113.77: x' is not the owner"),
        "the forged username is shown quoted:\n{log}"
    );
    assert!(log.contains("'x\\u{a}failed authentication from 203.0.113.78: y'"));
    assert!(log.contains("\\u{2028}failed authentication from 203.0.113.80: \\u{202e}x"));

    expected_failures
}

#[test]
fn forged_log_lines_are_escaped_and_fail2ban_sees_only_the_real_client() {
    let s = Server::start();
    let failures = send_forgeries(&s);
    let hosts = fail2ban_hosts(s.dir.path(), &s.log(), Form::File);
    assert_eq!(
        hosts,
        vec!["127.0.0.1".to_string(); failures],
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

/// SPEC 17: with `backend = systemd` (the README's jail) fail2ban reads the
/// journal; the filter must find every failure there too, and nothing forged.
#[test]
fn fail2ban_reading_the_journal_finds_every_failure_and_only_the_real_client() {
    let s = Server::start();
    let failures = send_forgeries(&s);
    let journal = as_journal(s.dir.path(), &s.log(), s.pid());
    assert!(
        journal.starts_with(&format!("vps dedyn-update[{}]: ", s.pid())),
        "not fail2ban's journal form:\n{journal}"
    );
    let hosts = fail2ban_hosts(s.dir.path(), &journal, Form::Journal);
    assert_eq!(
        hosts,
        vec!["127.0.0.1".to_string(); failures],
        "fail2ban must find exactly the real client once per failed authentication:\n{journal}"
    );
}

/// The README's jail, with the shipped filter in a copy of Debian's fail2ban
/// configuration, is what `fail2ban-client -d` (the configuration as the
/// server would get it) reads: a systemd (journal) jail with the filter's regex.
#[test]
fn the_readme_jail_reads_the_shipped_filter_from_the_journal() {
    let dir = crate::common::proc::TempDir::new("f2b-conf");
    let conf = dir.path();
    // Debian's configuration (actions, paths), without its jail.d (which
    // enables sshd) and without an installed copy of our filter.
    let copied = Command::new("cp")
        .args(["-r", "/etc/fail2ban/."])
        .arg(conf)
        .status()
        .expect("cp");
    assert!(copied.success(), "copy /etc/fail2ban (package fail2ban)");
    std::fs::remove_dir_all(conf.join("jail.d")).expect("rm jail.d");
    std::fs::create_dir(conf.join("jail.d")).expect("mkdir jail.d");
    std::fs::write(
        conf.join("filter.d/dedyn-update.conf"),
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/data/fail2ban/dedyn-update.conf"
        )),
    )
    .expect("filter");
    std::fs::write(
        conf.join("jail.d/dedyn-update.local"),
        recipe("fail2ban-jail"),
    )
    .expect("jail");
    let out = Command::new("fail2ban-client")
        .arg("-c")
        .arg(conf)
        .arg("-d")
        .output()
        .expect("fail2ban-client (Debian package fail2ban) runs");
    let dump = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{dump}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dump.contains("['add', 'dedyn-update', 'systemd']"),
        "{dump}"
    );
    let regex = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/fail2ban/dedyn-update.conf"
    ))
    .lines()
    .find_map(|l| l.strip_prefix("failregex = "))
    .expect("failregex line");
    let shown = format!("'addfailregex', '{}'", regex.replace('\\', "\\\\"));
    assert!(dump.contains(&shown), "{shown} not in:\n{dump}");
    assert!(
        dump.contains(
            "['set', 'dedyn-update', 'addjournalmatch', '_SYSTEMD_UNIT=dedyn-update.service']"
        ),
        "{dump}"
    );
}
