//! The background publisher: batches committed changes, renders and atomically
//! replaces each changed zone file, runs the reload command (with timeout and backoff).

pub mod zone;

use crate::config::{Config, Zone};
use crate::store::{now_unix, Store};
use log::{error, info, warn};
use std::collections::HashMap;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the database is polled for changes made by other processes (admin
/// commands): well inside SPEC 2's "published within 2 seconds".
const POLL: Duration = Duration::from_millis(250);
/// How often token last-used times are written (coalesced: one write per batch).
const LAST_USED_FLUSH: Duration = Duration::from_secs(30);
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

enum Msg {
    /// A change committed at this instant.
    Changed(Instant),
    Shutdown,
}

/// Token id → last use (unix time), written in batches by the publisher thread.
#[derive(Default)]
pub struct LastUsed(Mutex<HashMap<i64, i64>>);

impl LastUsed {
    pub fn note(&self, token: i64) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token, now_unix());
    }

    fn take(&self) -> Vec<(i64, i64)> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect()
    }
}

/// Publication counters (for logs and metrics).
#[derive(Default)]
pub struct PublishStats {
    pub publications: AtomicU64,
    pub failures: AtomicU64,
    pub last_duration_us: AtomicU64,
    /// Sum over every attempt, successful or not (with `publications + failures`
    /// it is the metrics' duration summary).
    pub duration_us_total: AtomicU64,
    /// Zone → unix time of its last successful publication.
    pub last_success: Mutex<std::collections::BTreeMap<String, i64>>,
}

/// The handle the workers use to say "something changed".
#[derive(Clone)]
pub struct Publisher {
    tx: Sender<Msg>,
}

impl Publisher {
    pub fn changed(&self) {
        let _ = self.tx.send(Msg::Changed(Instant::now()));
    }

    /// Publish what is pending, write last-used times, and stop the thread.
    pub fn shutdown(&self) {
        let _ = self.tx.send(Msg::Shutdown);
    }
}

/// Start the publisher thread. Every zone is published once first.
pub fn spawn(
    config: Arc<Config>,
    store: Store,
    last_used: Arc<LastUsed>,
    stats: Arc<PublishStats>,
) -> std::io::Result<(Publisher, JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("publisher".into())
        .spawn(move || {
            ZonePublisher {
                config,
                store,
                last_used,
                stats,
                retry: HashMap::new(),
                paced: HashMap::new(),
                wake_at: None,
                buf: Vec::new(),
                last_work: Duration::ZERO,
            }
            .run(rx)
        })?;
    Ok((Publisher { tx }, handle))
}

/// The publisher thread's state (one thread for every zone).
struct ZonePublisher {
    config: Arc<Config>,
    store: Store,
    last_used: Arc<LastUsed>,
    stats: Arc<PublishStats>,
    /// zone → (next attempt, current backoff) after a failed publication.
    retry: HashMap<String, (Instant, Duration)>,
    /// zone → earliest next publication: a zone is republished at most as often
    /// as it takes to render and write it (at most half the publisher's time), so
    /// under a steady stream of updates a large zone is not re-rendered back to back.
    paced: HashMap<String, Instant>,
    /// When a paced zone may go again (the loop's next wake-up).
    wake_at: Option<Instant>,
    /// The rendering buffer, kept between publications.
    buf: Vec<u8>,
    /// How long the last render and write took.
    last_work: Duration,
}

impl ZonePublisher {
    fn run(mut self, rx: Receiver<Msg>) {
        for z in self.config.zones.clone() {
            self.publish(&z.name);
        }
        let mut last_flush = Instant::now();
        loop {
            let wait = self.wake_at.map_or(POLL, |t| {
                t.saturating_duration_since(Instant::now()).min(POLL)
            });
            let shutdown = match rx.recv_timeout(wait) {
                Ok(Msg::Changed(at)) => self.gather(&rx, at),
                Ok(Msg::Shutdown) | Err(RecvTimeoutError::Disconnected) => true,
                // A paced zone's turn has come: it has waited long enough already.
                Err(RecvTimeoutError::Timeout) if self.wake_at.is_some() => false,
                // A change from another process (the CLI) is batched like any other.
                Err(RecvTimeoutError::Timeout) => match self.store.dirty_zones() {
                    Ok(d) if !d.is_empty() => self.gather(&rx, Instant::now()),
                    _ => false,
                },
            };
            self.wake_at = None;
            self.publish_dirty(shutdown);
            if shutdown || last_flush.elapsed() >= LAST_USED_FLUSH {
                if let Err(e) = self.store.touch_tokens(&self.last_used.take()) {
                    warn!("could not record token last-used times: {e}");
                }
                last_flush = Instant::now();
            }
            if shutdown {
                info!("publisher stopped");
                return;
            }
        }
    }

    /// Batch: wait until `publish_delay` after the first change, collecting more.
    /// The window runs from when that change was committed, not from when this
    /// thread got to it: a change that arrived during the previous publication
    /// has waited already.
    fn gather(&self, rx: &Receiver<Msg>, first: Instant) -> bool {
        let until = first + self.config.dns.publish_delay;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match rx.recv_timeout(left) {
                Ok(Msg::Changed(_)) => continue,
                Ok(Msg::Shutdown) | Err(RecvTimeoutError::Disconnected) => return true,
                Err(RecvTimeoutError::Timeout) => return false,
            }
        }
    }

    fn publish_dirty(&mut self, ignore_backoff: bool) {
        // SPEC 10: values are removed an hour after they were written, with no
        // call; their zones are then dirty like any other change. One indexed
        // EXISTS per wake-up (at least every POLL) when nothing has expired.
        match self.store.expire_acme(now_unix()) {
            Ok(zones) if !zones.is_empty() => {
                info!("expired _acme-challenge values in {}", zones.join(", "))
            }
            Ok(_) => {}
            Err(e) => error!("cannot remove expired _acme-challenge values: {e}"),
        }
        let dirty = match self.store.dirty_zones() {
            Ok(d) => d,
            Err(e) => {
                error!("cannot read zone state: {e}");
                return;
            }
        };
        let now = Instant::now();
        for z in dirty {
            if self.config.zone(&z).is_none() {
                continue; // a zone no longer configured: nothing to publish
            }
            if !ignore_backoff && self.retry.get(&z).is_some_and(|(at, _)| *at > now) {
                continue;
            }
            if let Some(at) = self
                .paced
                .get(&z)
                .copied()
                .filter(|at| *at > now && !ignore_backoff)
            {
                self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
                continue;
            }
            self.publish(&z);
        }
    }

    fn publish(&mut self, zone_name: &str) {
        let Some(zone) = self.config.zone(zone_name).cloned() else {
            return;
        };
        let started = Instant::now();
        let result = self.try_publish(&zone);
        let took = started.elapsed();
        // Paced by our own work (render and write), not by the reload: waiting for
        // the nameserver is not CPU of ours, and with verify_server (or knotc -b)
        // a reload has finished before the next one starts.
        self.paced
            .insert(zone_name.to_string(), Instant::now() + self.last_work);
        self.stats
            .last_duration_us
            .store(took.as_micros() as u64, Ordering::Relaxed);
        self.stats
            .duration_us_total
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        match result {
            Ok(serial) => {
                self.stats.publications.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .last_success
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(zone_name.to_string(), now_unix());
                self.retry.remove(zone_name);
                info!(
                    "published zone {zone_name} serial {serial} in {} ms ({} ms rendering and writing)",
                    took.as_millis(),
                    self.last_work.as_millis()
                );
            }
            Err(e) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                let backoff = self
                    .retry
                    .get(zone_name)
                    .map_or(BACKOFF_MIN, |(_, b)| (*b * 2).min(BACKOFF_MAX));
                self.retry
                    .insert(zone_name.to_string(), (Instant::now() + backoff, backoff));
                if let Err(e) = self.store.mark_unpublished(zone_name) {
                    error!("cannot mark zone {zone_name} for retry: {e}");
                }
                error!(
                    "publishing zone {zone_name} failed: {e}; retrying in {} s",
                    backoff.as_secs()
                );
            }
        }
    }

    fn try_publish(&mut self, zone: &Zone) -> Result<u32, String> {
        let work_started = Instant::now();
        let serial = self
            .store
            .start_publication(&zone.name)
            .map_err(|e| e.to_string())?;
        let mut text = std::mem::take(&mut self.buf);
        text.clear();
        let read = render_zone(zone, self.config.dns.ttl, serial, &self.store, &mut text);
        let written = read.and_then(|_| {
            zone::write_atomically(&zone.file, &text)
                .map_err(|e| format!("writing {}: {e}", zone.file.display()))
        });
        // The buffer keeps its capacity: the next publication of a large zone
        // does not grow it again.
        self.buf = text;
        self.last_work = work_started.elapsed();
        written?;
        if !self.config.dns.reload_command.is_empty() {
            run_reload(
                &self.config.dns.reload_command,
                &zone.name,
                &zone.file,
                self.config.dns.reload_timeout,
            )?;
        }
        if let Some(server) = self.config.dns.verify_server {
            wait_until_served(server, &zone.name, serial, self.config.dns.reload_timeout)?;
        }
        Ok(serial)
    }
}

/// The zone file with `serial`, from the include file and the stored records:
/// the one composition behind the publisher and `zone render`. Returns the
/// number of records.
pub fn render_zone(
    zone: &Zone,
    ttl: u32,
    serial: u32,
    store: &Store,
    out: &mut Vec<u8>,
) -> Result<usize, String> {
    let include = zone::read_include(zone)?;
    let records = zone::render(
        zone,
        ttl,
        serial,
        include.as_deref(),
        |emit| store.for_each_record(&zone.name, emit),
        out,
    )
    .map_err(|e| e.to_string())?;
    // SPEC 10: the live _acme-challenge values, after the addresses.
    let values = store
        .for_each_acme_value(&zone.name, now_unix(), |name, value| {
            zone::render_acme_txt(name, ttl, value, out)
        })
        .map_err(|e| e.to_string())?;
    Ok(records + values)
}

/// After a reload: poll `server` until it serves `serial` (or a later one) for
/// `zone`. A nameserver that dropped the reload (NSD ignores one that arrives
/// while it is still loading) makes this publication fail, so it is retried,
/// instead of leaving the change on disk but not in the DNS.
pub fn wait_until_served(
    server: std::net::SocketAddr,
    zone: &str,
    serial: u32,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
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
                None => "no SOA".into(),
            },
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "{server} still serves {last} for {zone}, not {serial}, {} s after the reload",
                timeout.as_secs_f64()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Quote for `sh`: the value stays one word whatever it contains.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Run the reload command through `sh -c` with `{zone}` and `{file}` replaced, in
/// its own process group so that a timeout kills everything it started.
pub fn run_reload(
    template: &str,
    zone: &str,
    file: &std::path::Path,
    timeout: Duration,
) -> Result<(), String> {
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
        .map_err(|e| format!("cannot start reload command: {e}"))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() >= deadline => {
                crate::os::sys::kill_process_group(child.id());
                let _ = child.wait();
                return Err(format!(
                    "reload command timed out after {} s and was killed: {cmd}",
                    timeout.as_secs_f64()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("waiting for reload command: {e}")),
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
    Err(format!(
        "reload command failed ({status}): {cmd}: {}",
        output.trim()
    ))
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
        assert!(e.contains("oops"), "{e}");
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
        assert!(e.contains("timed out"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
