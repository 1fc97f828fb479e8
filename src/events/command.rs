//! One run of the event command: the program itself (no shell, SPEC 15), in its
//! own process group, the event on its standard input; at the timeout, or when
//! the service stops, the whole group is killed.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often a running command is looked at (its exit, the timeout, the stop).
const STEP: Duration = Duration::from_millis(10);

/// Why a run did not deliver its event.
#[derive(Debug)]
pub enum RunError {
    Start(std::io::Error),
    Failed(ExitStatus),
    TimedOut(Duration),
    /// The service is stopping: the event is delivered after the next start.
    Stopped,
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Start(e) => write!(f, "cannot start it: {e}"),
            RunError::Failed(s) => write!(f, "it failed ({s})"),
            RunError::TimedOut(t) => write!(
                f,
                "it ran longer than events.timeout_secs = {} and was killed",
                t.as_secs_f64()
            ),
            RunError::Stopped => f.write_str("the service stopped while it ran"),
        }
    }
}

/// Run `program` with `input` on its standard input; `Ok` when it exits 0
/// within `timeout`. Its standard error goes to the service's log.
pub fn run(
    program: &Path,
    input: &[u8],
    timeout: Duration,
    stop: &AtomicBool,
) -> Result<(), RunError> {
    let mut child = Command::new(program)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .map_err(RunError::Start)?;
    let pid = child.id();
    if let Some(mut stdin) = child.stdin.take() {
        // An event is far below a pipe's 64 KiB, so this does not block; a
        // program that exits without reading it gets it not (EPIPE): its exit
        // status decides.
        let _ = stdin.write_all(input);
    }
    let deadline = Instant::now() + timeout;
    let ended = loop {
        match crate::os::sys::child_exited(pid) {
            Ok(true) => break Ok(()),
            Ok(false) => {}
            Err(e) => break Err(RunError::Start(e)),
        }
        if Instant::now() >= deadline {
            break Err(RunError::TimedOut(timeout));
        }
        if stop.load(Ordering::SeqCst) {
            break Err(RunError::Stopped);
        }
        std::thread::sleep(STEP);
    };
    // Not reaped yet, so the group id is still ours to kill: nothing the
    // program left running outlives it.
    crate::os::sys::kill_process_group(pid);
    let status = child.wait().map_err(RunError::Start)?;
    ended?;
    if status.success() {
        Ok(())
    } else {
        Err(RunError::Failed(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_that_hangs_is_killed_at_the_timeout() {
        let stop = AtomicBool::new(false);
        let t = Instant::now();
        let r = run(
            Path::new("/usr/bin/yes"),
            b"",
            Duration::from_millis(300),
            &stop,
        );
        assert!(matches!(r, Err(RunError::TimedOut(_))), "{r:?}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn the_exit_status_decides() {
        let stop = AtomicBool::new(false);
        let long = Duration::from_secs(10);
        assert!(run(Path::new("/bin/true"), b"{}\n", long, &stop).is_ok());
        assert!(matches!(
            run(Path::new("/bin/false"), b"{}\n", long, &stop),
            Err(RunError::Failed(_))
        ));
        assert!(matches!(
            run(Path::new("/nonexistent/program"), b"", long, &stop),
            Err(RunError::Start(_))
        ));
    }
}
