//! The publisher's one error type: why a publication attempt failed, phrased so
//! that an operator reading the log (or `status`) knows what to look at.

use super::feed::FeedError;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// Why one publication attempt failed. Every variant leaves the zone unpublished
/// (it is retried); none of them is ever counted as a publication.
#[derive(Debug)]
pub enum PublishError {
    /// The database could not be read or written.
    Feed(FeedError),
    /// The zone's `include` file could not be read (the message names it).
    Include(String),
    /// SPEC 17: a new, empty database would replace the names a zone file
    /// already publishes; nothing is created (the message names the file).
    WouldEmpty(String),
    /// The zone file could not be written.
    Write {
        file: PathBuf,
        error: std::io::Error,
    },
    /// `sh` could not be started for the reload command, or waited for.
    ReloadStart {
        command: String,
        error: std::io::Error,
    },
    /// The reload command exited non-zero; `output` is the end of what it printed.
    ReloadFailed {
        command: String,
        status: ExitStatus,
        output: String,
    },
    /// The reload command outlived `[dns] reload_timeout_secs` and was killed
    /// with its process group; `output` is the end of what it printed.
    ReloadTimeout {
        command: String,
        timeout: Duration,
        output: String,
    },
    /// While the reload command ran (longer than 1 s), a newer change arrived:
    /// the command was killed with its process group and the next attempt
    /// starts at once (SPEC 17).
    ReloadSuperseded { command: String, ran: Duration },
    /// The service is stopping and the time it gives reloads
    /// (`reload_timeout_secs` after SIGTERM, SPEC 17) is used up.
    Stopping,
    /// `[dns] verify_server` never served the new serial: the nameserver did not
    /// load the file (a dropped reload, a file it rejects).
    NotServed {
        server: SocketAddr,
        zone: String,
        serial: u32,
        last: String,
        timeout: Duration,
    },
    /// While waiting for `verify_server`, a newer change arrived: the next
    /// attempt (a higher serial) is started at once instead of waiting on.
    Superseded {
        server: SocketAddr,
        zone: String,
        serial: u32,
    },
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishError::Feed(e) => write!(f, "{e}"),
            PublishError::Include(m) | PublishError::WouldEmpty(m) => f.write_str(m),
            PublishError::Write { file, error } => write!(
                f,
                "cannot write zone file {}: {error} (the directory must exist and be writable by the service's user)",
                file.display()
            ),
            PublishError::ReloadStart { command, error } => {
                write!(f, "cannot run reload command (sh -c {command}): {error}")
            }
            PublishError::ReloadFailed {
                command,
                status,
                output,
            } => write!(f, "reload command failed ({status}): {command}: {output}"),
            PublishError::ReloadTimeout {
                command,
                timeout,
                output,
            } => write!(
                f,
                "reload command timed out after {} s and was killed with its process group: {command} (is the nameserver running? [dns] reload_timeout_secs sets the limit){}{output}",
                timeout.as_secs_f64(),
                if output.is_empty() { "" } else { ": " }
            ),
            PublishError::ReloadSuperseded { command, ran } => write!(
                f,
                "reload command still running after {:.1} s and a newer change is waiting: killed it with its process group to publish that instead: {command}",
                ran.as_secs_f64()
            ),
            PublishError::Stopping => f.write_str(
                "the service is stopping and its time for reloads ([dns] reload_timeout_secs after SIGTERM) is used up; the zone is published at the next start",
            ),
            // The zone is named by whoever reports this; `last` is what the
            // nameserver said last: "serial N", or why there was no serial.
            PublishError::NotServed {
                server,
                serial,
                last,
                timeout,
                ..
            } => match last.strip_prefix("serial ") {
                Some(served) => write!(
                    f,
                    "{server} still serves serial {served}, not {serial}, {} s after the reload (the nameserver did not load the new file: see its log)",
                    timeout.as_secs_f64()
                ),
                None => write!(
                    f,
                    "{server} gave no SOA serial in the {} s after the reload, where serial {serial} was expected: {last} (is [dns] verify_server the nameserver's address, and is it running?)",
                    timeout.as_secs_f64()
                ),
            },
            PublishError::Superseded {
                server,
                zone,
                serial,
            } => write!(
                f,
                "{server} did not serve serial {serial} of {zone} yet, and a newer change is waiting: publishing that instead"
            ),
        }
    }
}

impl PublishError {
    /// Whether the attempt was given up for a newer change (not a fault of its own).
    pub fn is_superseded(&self) -> bool {
        matches!(
            self,
            PublishError::Superseded { .. } | PublishError::ReloadSuperseded { .. }
        )
    }
}

impl std::error::Error for PublishError {}

impl From<FeedError> for PublishError {
    fn from(e: FeedError) -> Self {
        PublishError::Feed(e)
    }
}
