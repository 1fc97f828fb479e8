//! `dedyn-update import`: many add lines from stdin in one transaction, secrets out
//! in order; a bad line names its number and nothing is imported. Real binary.
mod common;
use common::server::{basic, Server, BIN};
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn import(s: &Server, input: &str) -> Output {
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&s.config)
        .arg("import")
        .current_dir(s.dir.path())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run dedyn-update import");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).expect("write stdin");
    drop(stdin);
    child.wait_with_output().expect("import output")
}

/// 1,000 lines: users, their domains and tokens, then one update with an imported token.
#[test]
fn import_thousand_lines_then_update_with_an_imported_token() {
    let s = Server::start();
    let mut input = String::from("# bench data\n");
    for i in 0..333 {
        input.push_str(&format!(
            "user add u{i}@example.org\ndomain add h{i}.dedyn.example --owner u{i}@example.org\ntoken add --owner u{i}@example.org\n"
        ));
    }
    input.push('\n'); // 1,000 lines with the comment and this empty one
    let out = import(&s, &input);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "import failed: {stderr}");
    let secrets: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(secrets.len(), 333, "one secret per token line");
    assert_eq!(s.cli_ok(&["domain", "list"]).lines().count(), 333);

    // The secrets come in the order of the token lines: the 42nd updates h42.
    let r = s.get(
        "/?myipv4=192.0.2.42",
        &[("Authorization", &basic("h42.dedyn.example", &secrets[42]))],
    );
    assert_eq!((r.status, r.body.as_str()), (200, "good"));
    assert_eq!(s.records("h42.dedyn.example"), ["A 192.0.2.42"]);
    // ... and not h43 with the 42nd secret.
    let r = s.get(
        "/?myipv4=192.0.2.43",
        &[("Authorization", &basic("h43.dedyn.example", &secrets[42]))],
    );
    assert_eq!(r.status, 401);
}

/// A bad line (here: a domain outside every zone) aborts the whole import.
#[test]
fn import_bad_line_names_the_line_and_imports_nothing() {
    let s = Server::start();
    let input = "user add a@example.org\n\
                 domain add a.dedyn.example --owner a@example.org\n\
                 token add --owner a@example.org\n\
                 domain add b.elsewhere.example --owner a@example.org\n";
    let out = import(&s, input);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("line 4"), "names the line: {stderr}");
    assert!(stderr.contains("b.elsewhere.example"), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "no secret of a token that was rolled back"
    );
    assert_eq!(s.cli_ok(&["user", "list"]), "");
    assert_eq!(s.cli_ok(&["domain", "list"]), "");
}

/// Lines are checked exactly like the commands: a duplicate is refused the same way.
#[test]
fn import_validates_like_the_single_commands() {
    let s = Server::start();
    s.cli_ok(&["user", "add", "a@example.org"]);
    let single = s.cli(&["user", "add", "a@example.org"]);
    let out = import(&s, "user add b@example.org\nuser add a@example.org\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(single.code));
    let msg = single.stderr.trim().trim_start_matches("dedyn-update: ");
    assert!(stderr.contains(&format!("line 2: {msg}")), "{stderr}");
    assert_eq!(s.cli_ok(&["user", "list"]), "a@example.org\n");
    let out = import(&s, "token add --owner a@example.org --family v5\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1: --family"));
}
