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
    pub(super) fn within(problems: Vec<String>, prefix: &str) -> ConfigError {
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
