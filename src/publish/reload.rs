//! The nameserver's side of a publication: running the reload command (in its own
//! process group, killed at the timeout) and waiting until `verify_server` serves it.

use super::error::PublishError;
use std::io::Read;
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
            Err(e) => e,
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

/// Run the reload command through `sh -c` with `{zone}` and `{file}` replaced, in
/// its own process group so that a timeout kills everything it started.
pub fn run_reload(
    template: &str,
    zone: &str,
    file: &std::path::Path,
    timeout: Duration,
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
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() >= deadline => {
                crate::os::sys::kill_process_group(child.id());
                let _ = child.wait();
                return Err(PublishError::ReloadTimeout {
                    command: cmd,
                    timeout,
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(error) => {
                return Err(PublishError::ReloadStart {
                    command: cmd,
                    error,
                })
            }
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut output = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.by_ref().take(2000).read_to_string(&mut output);
    }
    if let Some(mut o) = child.stdout.take() {
        let _ = o.by_ref().take(2000).read_to_string(&mut output);
    }
    Err(PublishError::ReloadFailed {
        command: cmd,
        status,
        output: output.trim().to_string(),
    })
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
        )
        .unwrap_err();
        assert!(e.to_string().contains("timed out"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
