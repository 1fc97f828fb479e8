//! The nameserver's side of a publication: running the reload command (in its own
//! process group, its output read as it runs, killed at the timeout or for a newer
//! change) and waiting until `verify_server` serves it.

use super::error::PublishError;
use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// After a reload: poll `server` until it serves `serial` (or a later one) for
/// `zone`. A nameserver that dropped the reload (NSD ignores one that arrives
/// while it is still loading) makes this publication fail, so it is retried,
/// instead of leaving the change on disk but not in the DNS.
///
/// `superseded` is asked every 100 ms once `patience` has passed: if a newer
/// change is waiting, the wait ends (`Superseded`) so that the next attempt — whose
/// higher serial proves this one too — is not held back (SPEC 13). The patience
/// keeps a slow but working nameserver from being superseded forever.
pub fn wait_until_served(
    server: std::net::SocketAddr,
    zone: &str,
    serial: u32,
    timeout: Duration,
    patience: Duration,
    superseded: &mut dyn FnMut() -> bool,
) -> Result<(), PublishError> {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut next_look = started + patience;
    loop {
        let last = match crate::net::dnsquery::query(
            server,
            zone,
            crate::net::dnsquery::SOA,
            Duration::from_millis(500),
        ) {
            // RFC 1982 serial arithmetic: served is serial or later.
            Ok(a) => match a.soa_serial {
                Some(s) if (s.wrapping_sub(serial) as i32) >= 0 => return Ok(()),
                Some(s) => format!("serial {s}"),
                None => "an answer without the zone's SOA (does it serve the zone?)".into(),
            },
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(PublishError::NotServed {
                server,
                zone: zone.to_string(),
                serial,
                last,
                timeout,
            });
        }
        if Instant::now() >= next_look {
            if superseded() {
                return Err(PublishError::Superseded {
                    server,
                    zone: zone.to_string(),
                    serial,
                });
            }
            next_look = Instant::now() + Duration::from_millis(100);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Quote for `sh`: the value stays one word whatever it contains.
pub(crate) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// How much of a reload command's output is kept for the log and `status`:
/// its end, where the error usually is (SPEC 17).
const OUTPUT_KEPT: usize = 4096;
/// SPEC 17: a reload attempt that has run this long is given up for a newer
/// change (unless reloads are normally slower: see `run_reload`'s `patience`).
pub const SUPERSEDE_AFTER: Duration = Duration::from_secs(1);
/// How often a running reload asks whether a newer change waits.
const LOOK_EVERY: Duration = Duration::from_millis(100);
/// How long one wait for output lasts before the command's exit, the timeout
/// and the newer change are looked at again.
const STEP: Duration = Duration::from_millis(10);
/// After the shell exited and its group was killed: how long output still in
/// the pipes is read, in case something outside the group holds them open.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(200);

/// The last `OUTPUT_KEPT` bytes a command printed, stdout and stderr as they came.
#[derive(Default)]
struct Tail(VecDeque<u8>);

impl Tail {
    fn push(&mut self, bytes: &[u8]) {
        self.0.extend(bytes);
        let excess = self.0.len().saturating_sub(OUTPUT_KEPT);
        self.0.drain(..excess);
    }

    fn text(&self) -> String {
        let (a, b) = self.0.as_slices();
        String::from_utf8_lossy(&[a, b].concat()).trim().to_string()
    }
}

/// A running command's output pipes, read while it runs so that a chatty
/// command never blocks on a full pipe (64 KiB on Linux; SPEC 17).
struct Output {
    pipes: Vec<File>,
    tail: Tail,
}

impl Output {
    fn new(child: &mut std::process::Child) -> Output {
        let out = child.stdout.take().map(|p| File::from(OwnedFd::from(p)));
        let err = child.stderr.take().map(|p| File::from(OwnedFd::from(p)));
        Output {
            pipes: out.into_iter().chain(err).collect(),
            tail: Tail::default(),
        }
    }

    /// Read what arrives within `wait`; a pipe at EOF (or failing) is closed.
    fn read_for(&mut self, wait: Duration) {
        if self.pipes.is_empty() {
            std::thread::sleep(wait);
            return;
        }
        let fds: Vec<_> = self.pipes.iter().map(|p| p.as_raw_fd()).collect();
        let ready = match crate::os::sys::wait_any_readable(&fds, wait) {
            Ok(r) => r,
            Err(_) => {
                // Nothing sensible to read from; the pipes close with the command.
                self.pipes.clear();
                return;
            }
        };
        let mut buf = [0u8; 8192];
        for i in (0..self.pipes.len()).rev() {
            if !ready[i] {
                continue;
            }
            // One read per readiness: it does not block (poll said so).
            match self.pipes[i].read(&mut buf) {
                Ok(0) => drop(self.pipes.remove(i)),
                Ok(n) => self.tail.push(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => drop(self.pipes.remove(i)),
            }
        }
    }

    /// Read until every pipe is at EOF or `until`.
    fn drain(&mut self, until: Instant) {
        while !self.pipes.is_empty() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            self.read_for(left.min(STEP));
        }
    }
}

/// How a reload command's run ended.
enum Ended {
    Exited,
    TimedOut,
    Superseded,
}

/// Run the reload command through `sh -c` with `{zone}` and `{file}` replaced, in
/// its own process group. SPEC 17: its output is read while it runs (the last
/// 4 KiB kept for the error); when the shell exits, at `timeout`, or when
/// `superseded` says a newer change waits (asked every 100 ms once `patience`
/// has passed), the whole group is killed — a child left in the background
/// with it (a daemon must detach with setsid) — so nothing the command started
/// outlives it. `patience` below 1 s counts as 1 s.
pub fn run_reload(
    template: &str,
    zone: &str,
    file: &std::path::Path,
    timeout: Duration,
    patience: Duration,
    superseded: &mut dyn FnMut() -> bool,
) -> Result<(), PublishError> {
    let cmd = template
        .replace("{zone}", &shell_quote(zone))
        .replace("{file}", &shell_quote(&file.to_string_lossy()));
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(&cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|error| PublishError::ReloadStart {
            command: cmd.clone(),
            error,
        })?;
    let pid = child.id();
    let mut output = Output::new(&mut child);
    let started = Instant::now();
    let deadline = started + timeout;
    let mut next_look = started + patience.max(SUPERSEDE_AFTER);
    let ended = loop {
        let now = Instant::now();
        if now >= deadline {
            break Ok(Ended::TimedOut);
        }
        if now >= next_look {
            if superseded() {
                break Ok(Ended::Superseded);
            }
            next_look = Instant::now() + LOOK_EVERY;
        }
        output.read_for(STEP.min(deadline - now));
        match crate::os::sys::child_exited(pid) {
            Ok(true) => break Ok(Ended::Exited),
            Ok(false) => {}
            Err(error) => break Err(error),
        }
    };
    // The shell is not reaped yet, so its group id is still ours to kill.
    crate::os::sys::kill_process_group(pid);
    if matches!(ended, Ok(Ended::Exited)) {
        output.drain(Instant::now() + DRAIN_AFTER_EXIT);
    }
    let status = child.wait();
    let text = output.tail.text();
    let (ended, status) = match (ended, status) {
        (Ok(e), Ok(s)) => (e, s),
        (Err(error), _) | (_, Err(error)) => {
            return Err(PublishError::ReloadStart {
                command: cmd,
                error,
            })
        }
    };
    match ended {
        Ended::TimedOut => Err(PublishError::ReloadTimeout {
            command: cmd,
            timeout,
            output: text,
        }),
        Ended::Superseded => Err(PublishError::ReloadSuperseded {
            command: cmd,
            ran: started.elapsed(),
        }),
        Ended::Exited if status.success() => {
            if !text.is_empty() {
                log::debug!("reload command for zone {zone} printed: {text}");
            }
            Ok(())
        }
        Ended::Exited => Err(PublishError::ReloadFailed {
            command: cmd,
            status,
            output: text,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_substitutes_quoted_zone_and_file() {
        let dir = std::env::temp_dir().join(format!("dedyn-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out");
        let tmpl = format!("echo {{zone}} {{file}} > {}", out.display());
        run_reload(
            &tmpl,
            "dedyn.example",
            std::path::Path::new("/x/it's.zone"),
            Duration::from_secs(5),
            Duration::ZERO,
            &mut || false,
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "dedyn.example /x/it's.zone\n"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn failing_reload_reports_output() {
        let e = run_reload(
            "echo oops >&2; exit 3",
            "z",
            std::path::Path::new("f"),
            Duration::from_secs(5),
            Duration::ZERO,
            &mut || false,
        )
        .unwrap_err();
        assert!(e.to_string().contains("oops"), "{e}");
    }

    #[test]
    fn hanging_reload_is_killed_after_the_timeout() {
        let t = Instant::now();
        let e = run_reload(
            "sleep 30",
            "z",
            std::path::Path::new("f"),
            Duration::from_millis(300),
            Duration::ZERO,
            &mut || false,
        )
        .unwrap_err();
        assert!(e.to_string().contains("timed out"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    /// SPEC 17: output is read while the command runs, so one printing more
    /// than a pipe holds (64 KiB) finishes; the error keeps the end (4 KiB).
    #[test]
    fn a_chatty_failing_reload_finishes_and_reports_the_end_of_its_output() {
        let e = run_reload(
            "seq 1 30000; echo oops >&2; exit 3",
            "z",
            std::path::Path::new("f"),
            Duration::from_secs(10),
            Duration::ZERO,
            &mut || false,
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("failed"), "{text}");
        assert!(text.contains("30000") && text.contains("oops"), "{text}");
        assert!(!text.contains("\n1000\n"), "kept more than the end: {text}");
        assert!(text.len() < OUTPUT_KEPT + 200, "{}", text.len());
    }

    /// SPEC 17: a child left in the background (`sleep 600 &`) holding the
    /// pipes neither keeps the reload running after the shell exited nor
    /// survives it: it is killed with the process group.
    #[test]
    fn a_child_left_in_the_background_is_killed_when_the_shell_exits() {
        let (tx, rx) = std::sync::mpsc::channel();
        // A thread, so that the defect (waiting for EOF for 600 s) fails the
        // test instead of hanging it.
        std::thread::spawn(move || {
            let r = run_reload(
                "sleep 600 & echo child $!; exit 1",
                "z",
                std::path::Path::new("f"),
                Duration::from_secs(30),
                Duration::ZERO,
                &mut || false,
            );
            let _ = tx.send(r);
        });
        let e = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the reload returned once the shell exited")
            .unwrap_err();
        let text = e.to_string();
        let pid: u32 = text
            .rsplit("child ")
            .next()
            .and_then(|r| r.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no child PID in {text}"));
        let gone = Instant::now() + Duration::from_secs(10);
        while std::path::Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < gone {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "the background child {pid} outlived the reload"
        );
    }

    /// SPEC 17: once the command has run its patience (at least 1 s), a newer
    /// change kills it and the attempt ends as superseded; not before.
    #[test]
    fn a_running_reload_is_superseded_after_a_second_not_before() {
        let started = Instant::now();
        let mut first_ask = None;
        let e = run_reload(
            "sleep 30",
            "z",
            std::path::Path::new("f"),
            Duration::from_secs(20),
            Duration::ZERO,
            &mut || {
                first_ask.get_or_insert(started.elapsed());
                true
            },
        )
        .unwrap_err();
        assert!(e.is_superseded(), "{e}");
        assert!(
            first_ask.is_some_and(|t| t >= SUPERSEDE_AFTER),
            "{first_ask:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(10), "{e}");
    }
}
