//! What a config load reports: every problem it found, each naming its key
//! (and the file), one per line.

use std::fmt;

/// Configuration problems, each phrased for the operator who has to fix it and
/// naming its key: one load reports every problem it found, not only the first.
/// Shown one per line.
#[derive(Debug)]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl ConfigError {
    pub fn one(problem: impl Into<String>) -> ConfigError {
        ConfigError {
            problems: vec![problem.into()],
        }
    }

    /// Every problem with `prefix: ` before it (the file's name), as one alone gets.
    pub(super) fn within(problems: Vec<Problem>, prefix: &str) -> ConfigError {
        ConfigError {
            problems: problems
                .into_iter()
                .map(|p| format!("{prefix}: {p}"))
                .collect(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problems.join("\n"))
    }
}

impl std::error::Error for ConfigError {}

/// One problem of a config file, phrased for the operator and naming its key
/// (`server.workers = 0: must be between 1 and 1024`). The checks in
/// `validate` and `paths` each make their own sentence, so this is a sentence
/// and not an enum: its type says it is a config problem, ready for
/// `ConfigError` to put the file's name before it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem(String);

impl From<String> for Problem {
    fn from(text: String) -> Problem {
        Problem(text)
    }
}

impl From<&str> for Problem {
    fn from(text: &str) -> Problem {
        Problem(text.to_string())
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Problem {}
