//! `import`: many `user add` / `domain add` / `token add` lines from stdin in one
//! transaction, all or nothing, prepared in full before it takes the write lock.

use super::add::Add;
use super::args::{open, print_lines, usage, Args, Failure, Out};
use super::domains::{domain_add, DOMAIN_FLAGS, DOMAIN_SWITCHES};
use super::tokens::{token_add, TOKEN_FLAGS};
use super::users::{user_add, USER_FLAGS};
use crate::config::settings::Config;
use crate::os::clock;
use crate::store::MAX_CLI_HOLD;
use log::info;
use std::time::Instant;

/// One line of `import`: `user add …`, `domain add …` or `token add …`, words
/// separated by whitespace (no quoting), parsed exactly like the command.
/// `force` (`import --force`) applies `--force` to every `domain add`.
fn import_line(config: &Config, line: &str, force: bool) -> Result<Add, Failure> {
    let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
    let (cmd, rest) = words.split_first().ok_or_else(|| usage("empty line"))?;
    let (flags, switches) = match cmd.as_str() {
        "user" => (USER_FLAGS, &[][..]),
        "domain" => (DOMAIN_FLAGS, DOMAIN_SWITCHES),
        "token" => (TOKEN_FLAGS, &[][..]),
        other => {
            return Err(usage(format!(
                "'{other}': expected user add, domain add or token add"
            )))
        }
    };
    let mut a = Args::parse_with_switches(rest, flags, switches)?;
    if a.positional.first().map(String::as_str) != Some("add") {
        return Err(usage(format!("expected {cmd} add")));
    }
    if force {
        a.switches.push("force".into());
    }
    match cmd.as_str() {
        "user" => user_add(&a),
        "domain" => domain_add(config, &a),
        _ => token_add(&a),
    }
}

/// How many additions run between two looks at the clock (`MAX_CLI_HOLD`).
const CLOCK_EVERY: usize = 1024;

/// `import [--force]`: many `user add` / `domain add` / `token add` lines from
/// stdin in one transaction, all or nothing. Every line is read, parsed, checked
/// and every secret made and hashed before the write lock is taken, so that the
/// transaction only runs the checks that need the database and the inserts
/// (SPEC 13: updates meanwhile wait, they do not fail). Prints each new token's
/// secret, in order, after the commit; a bad line is named by its number and
/// nothing is imported.
pub fn import(config: &Config, args: &[String]) -> Out {
    let a = Args::parse_with_switches(args, &[], &["force"])?;
    if !a.positional.is_empty() {
        return Err(usage(
            "import takes no arguments but --force; it reads lines from stdin",
        ));
    }
    let at = |n: usize, f: Failure| Failure {
        message: format!("line {n}: {}; nothing was imported", f.message),
        code: f.code,
    };
    let mut adds = Vec::new();
    for (i, line) in std::io::stdin().lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| at(n, Failure::from(format!("cannot read stdin: {e}"))))?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        adds.push((
            n,
            import_line(config, line, a.has("force")).map_err(|f| at(n, f))?,
        ));
    }
    let mut store = open(config)?;
    let batch = store.batch()?;
    let locked = Instant::now();
    let cpu_at_lock = clock::thread_cpu_time();
    let mut secrets = Vec::new();
    for (k, (n, add)) in adds.iter().enumerate() {
        // The service waits for this lock for LOCK_WAIT at most: give up long before.
        if k % CLOCK_EVERY == 0 && locked.elapsed() > MAX_CLI_HOLD {
            return Err(at(
                *n,
                Failure::from(format!(
                    "the import held the write lock for more than {} s; split the input",
                    MAX_CLI_HOLD.as_secs()
                )),
            ));
        }
        secrets.extend(add.run(&batch, &config.limits).map_err(|f| at(*n, f))?);
    }
    batch.commit()?;
    let held = locked.elapsed();
    // CPU time under the lock: on a busy machine the wall time is mostly waiting
    // for a CPU, and this says how long the lock would be held on an idle one.
    let cpu = match (cpu_at_lock, clock::thread_cpu_time()) {
        (Some(a), Some(b)) => format!(" ({} ms of CPU)", b.saturating_sub(a).as_millis()),
        _ => String::new(),
    };
    info!(
        "import: {} lines, write lock held {} ms{cpu}",
        adds.len(),
        held.as_millis()
    );
    print_lines(secrets);
    Ok(())
}
