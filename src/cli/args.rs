//! What every command shares: parsed arguments, the failure and its exit code,
//! opening the store for the configured zones, and printing lines to stdout.

use crate::config::error::ConfigError;
use crate::config::settings::Config;
use crate::net::name::NameError;
use crate::store::{Store, StoreError};
use std::io::Write;

/// A command's failure: the message (several problems: one a line, see
/// `failure_lines`) and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub code: i32,
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure {
            message: e.to_string(),
            code: 1,
        }
    }
}

impl From<NameError> for Failure {
    fn from(e: NameError) -> Self {
        Failure {
            message: e.to_string(),
            code: 1,
        }
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure { message, code: 1 }
    }
}

/// What `main` prints before a failure's message: `dedyn-update: `.
pub const PREFIX: &str = "dedyn-update: ";

/// Several problems as one failure, one per line, each with the `PREFIX` that
/// `main` prints before the first (as `check` prints its problems).
pub fn failure_lines(lines: impl IntoIterator<Item = String>) -> Failure {
    let lines: Vec<String> = lines.into_iter().collect();
    Failure::from(lines.join(&format!("\n{PREFIX}")))
}

/// A config that does not load: each of its problems on its own line.
impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        failure_lines(e.problems)
    }
}

pub fn usage(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        code: 2,
    }
}

pub type Out = Result<(), Failure>;

/// Parsed `--flag value` options, `--switch`es and positional arguments of one command.
pub struct Args {
    pub positional: Vec<String>,
    pub options: Vec<(String, String)>,
    pub switches: Vec<String>,
}

impl Args {
    /// `with_value`: flags that take a value. Anything else starting with `--` is an error.
    pub fn parse(raw: &[String], with_value: &[&str]) -> Result<Args, Failure> {
        Args::parse_with_switches(raw, with_value, &[])
    }

    /// Like `parse`, and `switches` are flags without a value (`--force`).
    pub fn parse_with_switches(
        raw: &[String],
        with_value: &[&str],
        switches: &[&str],
    ) -> Result<Args, Failure> {
        let mut positional = Vec::new();
        let mut options = Vec::new();
        let mut on = Vec::new();
        let mut it = raw.iter();
        while let Some(a) = it.next() {
            if let Some(flag) = a.strip_prefix("--") {
                if switches.contains(&flag) {
                    on.push(flag.to_string());
                    continue;
                }
                let (name, inline) = match flag.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
                    None => (flag, None),
                };
                if !with_value.contains(&name) {
                    return Err(usage(format!("unknown option --{name}")));
                }
                let value = match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .cloned()
                        .ok_or_else(|| usage(format!("--{name} needs a value")))?,
                };
                options.push((name.to_string(), value));
            } else {
                positional.push(a.clone());
            }
        }
        Ok(Args {
            positional,
            options,
            switches: on,
        })
    }

    /// Whether the switch `--name` was given.
    pub fn has(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }

    pub fn one(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.options
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Exactly `n` positional arguments, else a usage error naming `what`.
    pub fn exactly(&self, n: usize, what: &str) -> Result<&[String], Failure> {
        if self.positional.len() != n {
            return Err(usage(format!("expected {what}")));
        }
        Ok(&self.positional)
    }
}

/// Open the database for a command that writes: a missing one is created, and
/// the command says so on stderr with its absolute path (SPEC 12), so that a
/// command run with the wrong config does not silently start a second database.
pub fn open(config: &Config) -> Result<Store, Failure> {
    if crate::publish::is_new_database(&config.database.path) {
        // SPEC 17: nor does `user add` start an empty database over published zones.
        crate::publish::refuse_to_empty_published_zones(config).map_err(|e| e.to_string())?;
    }
    let created = !database_exists(config);
    let s = open_store(config)?;
    if created {
        eprintln!(
            "dedyn-update: created a new database at {} ({})",
            config.database.path.display(),
            config.origin()
        );
    }
    Ok(s)
}

/// Open the database for a command that only reads: it is never created; a
/// missing one is an error naming its absolute path and where it was configured.
pub fn open_existing(config: &Config) -> Result<Store, Failure> {
    if !database_exists(config) {
        return Err(missing_database(config));
    }
    open_store(config)
}

/// Whether the configured database file is there. A path we may not even look
/// at counts as there: opening it then fails with SQLite's reason.
fn database_exists(config: &Config) -> bool {
    config.database.path.try_exists().unwrap_or(true)
}

pub fn missing_database(config: &Config) -> Failure {
    Failure::from(format!(
        "no database at {} ({}); nothing was created. Is this the right --config? `serve` or `user add` creates one",
        config.database.path.display(),
        config.origin()
    ))
}

fn open_store(config: &Config) -> Result<Store, Failure> {
    let mut s = Store::open(&config.database.path, &config.database.synchronous)?;
    let zones: Vec<&str> = config.zones.iter().map(|z| z.name.as_str()).collect();
    s.ensure_zones(&zones)?;
    Ok(s)
}

/// Write `lines` to stdout; a closed stdout (`| head -1`) ends the output quietly
/// (SPEC 13) instead of panicking as `println!` does.
pub fn print_lines(lines: impl IntoIterator<Item = String>) {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for l in lines {
        if writeln!(out, "{l}").is_err() {
            return; // a closed pipe (| head) is not an error
        }
    }
}
/// The domain that holds `name`, or an error saying nobody does.
pub(crate) fn held(store: &Store, raw: &str) -> Result<(String, crate::update::Domain), Failure> {
    let name = crate::net::name::Hostname::parse(raw)
        .map_err(Failure::from)?
        .into_string();
    let d = store
        .domain_holding(&name)?
        .ok_or_else(|| Failure::from(format!("{name} is not a registered name")))?;
    Ok((name, d))
}
