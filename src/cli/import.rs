//! `import`: many `user add` / `domain add` / `token add` lines from stdin in one
//! transaction, all or nothing.

use super::add::Add;
use super::args::{open, print_lines, usage, Args, Failure, Out};
use super::domains::{domain_add, DOMAIN_FLAGS};
use super::tokens::{token_add, TOKEN_FLAGS};
use super::users::{user_add, USER_FLAGS};
use crate::config::Config;

/// One line of `import`: `user add …`, `domain add …` or `token add …`, words
/// separated by whitespace (no quoting), parsed exactly like the command.
fn import_line(config: &Config, line: &str) -> Result<Add, Failure> {
    let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
    let (cmd, rest) = words.split_first().ok_or_else(|| usage("empty line"))?;
    let flags = match cmd.as_str() {
        "user" => USER_FLAGS,
        "domain" => DOMAIN_FLAGS,
        "token" => TOKEN_FLAGS,
        other => {
            return Err(usage(format!(
                "'{other}': expected user add, domain add or token add"
            )))
        }
    };
    let a = Args::parse(rest, flags)?;
    if a.positional.first().map(String::as_str) != Some("add") {
        return Err(usage(format!("expected {cmd} add")));
    }
    match cmd.as_str() {
        "user" => user_add(&a),
        "domain" => domain_add(config, &a),
        _ => token_add(&a),
    }
}

/// `import`: many `user add` / `domain add` / `token add` lines from stdin in one
/// transaction, all or nothing. Prints each new token's secret, in order, after
/// the commit; a bad line is named by its number and nothing is imported.
pub fn import(config: &Config, args: &[String]) -> Out {
    if !args.is_empty() {
        return Err(usage(
            "import takes no arguments; it reads lines from stdin",
        ));
    }
    let mut store = open(config)?;
    let batch = store.batch()?;
    let mut secrets = Vec::new();
    let at = |n: usize, f: Failure| Failure {
        message: format!("line {n}: {}; nothing was imported", f.message),
        code: f.code,
    };
    for (i, line) in std::io::stdin().lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| at(n, Failure::from(format!("cannot read stdin: {e}"))))?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let add = import_line(config, line).map_err(|f| at(n, f))?;
        secrets.extend(add.run(&batch).map_err(|f| at(n, f))?);
    }
    batch.commit()?;
    print_lines(secrets);
    Ok(())
}
