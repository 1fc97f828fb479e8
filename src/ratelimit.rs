//! Sliding-window rate limits (`"2/120s, 100/1d"`): the parsed `Limits` of a config
//! key and a `Limiter` that counts hits per key in bounded memory.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::Hash;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most `count` hits in any `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub count: u32,
    pub window: Duration,
}

/// All limits of one key; empty means disabled (`""`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits(pub Vec<Limit>);

/// A comma-separated part of a rate-limit value that is not `COUNT/WINDOW`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitsError {
    pub part: String,
}

impl fmt::Display for LimitsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "'{}' is not a rate (expected COUNT/WINDOW like 2/120s, 10/1m, 100/1d)",
            self.part
        )
    }
}

impl std::error::Error for LimitsError {}

impl FromStr for Limits {
    type Err = LimitsError;

    fn from_str(s: &str) -> Result<Limits, LimitsError> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || LimitsError { part: part.into() };
            let (count, window) = part.split_once('/').ok_or_else(bad)?;
            let count: u32 = count
                .trim()
                .parse()
                .ok()
                .filter(|c| *c > 0)
                .ok_or_else(bad)?;
            let window = window.trim();
            let (num, unit) = match window.find(|c: char| !c.is_ascii_digit()) {
                Some(i) => window.split_at(i),
                None => (window, "s"),
            };
            let num: u64 = if num.is_empty() {
                1
            } else {
                num.parse().map_err(|_| bad())?
            };
            let secs = match unit {
                "s" => 1,
                "m" => 60,
                "h" => 3600,
                "d" => 86_400,
                _ => return Err(bad()),
            };
            if num == 0 || num > 366 * 86_400 {
                return Err(bad());
            }
            out.push(Limit {
                count,
                window: Duration::from_secs(num * secs),
            });
        }
        Ok(Limits(out))
    }
}

impl fmt::Display for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|l| format!("{}/{}s", l.count, l.window.as_secs()))
            .collect();
        f.write_str(&parts.join(", "))
    }
}

impl Limits {
    pub fn is_disabled(&self) -> bool {
        self.0.is_empty()
    }

    fn max_count(&self) -> usize {
        self.0.iter().map(|l| l.count as usize).max().unwrap_or(0)
    }

    fn max_window(&self) -> Duration {
        self.0.iter().map(|l| l.window).max().unwrap_or_default()
    }

    /// How long until a new hit is allowed, given the recent hits (newest last).
    fn wait(&self, hits: &VecDeque<Instant>, now: Instant) -> Option<Duration> {
        let mut wait = None;
        for l in &self.0 {
            let n = l.count as usize;
            if hits.len() < n {
                continue;
            }
            // The n-th newest hit must have left the window before another is allowed.
            let t = hits[hits.len() - n];
            let free_at = t + l.window;
            if free_at > now {
                let w = free_at - now;
                wait = Some(wait.map_or(w, |o: Duration| o.max(w)));
            }
        }
        wait
    }
}

/// Hits per key, at most `capacity` keys. When full, keys whose hits have all left
/// the longest window go first, then the least recently hit tenth: a flood of new
/// keys evicts itself rather than growing memory (the cost: a flooder may reset its
/// own count — never anyone else's newer one).
pub struct Limiter<K> {
    limits: Limits,
    capacity: usize,
    keys: Mutex<HashMap<K, VecDeque<Instant>>>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    pub fn new(limits: Limits, capacity: usize) -> Limiter<K> {
        Limiter {
            limits,
            capacity: capacity.max(16),
            keys: Mutex::new(HashMap::new()),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// `Some(wait)` when `key` is over a limit right now (nothing is counted).
    pub fn blocked(&self, key: &K, now: Instant) -> Option<Duration> {
        if self.limits.is_disabled() {
            return None;
        }
        let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.get(key).and_then(|h| self.limits.wait(h, now))
    }

    /// Count a hit for `key`.
    pub fn hit(&self, key: &K, now: Instant) {
        if self.limits.is_disabled() {
            return;
        }
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        self.record(&mut keys, key, now);
    }

    fn record(&self, keys: &mut HashMap<K, VecDeque<Instant>>, key: &K, now: Instant) {
        if !keys.contains_key(key) && keys.len() >= self.capacity {
            self.evict(keys, now);
        }
        let hits = keys.entry(key.clone()).or_default();
        hits.push_back(now);
        while hits.len() > self.limits.max_count() {
            hits.pop_front();
        }
    }

    /// Allow and count, or refuse with the time to wait (a refusal is not counted).
    pub fn check_and_hit(&self, key: &K, now: Instant) -> Result<(), Duration> {
        if self.limits.is_disabled() {
            return Ok(());
        }
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = keys.get(key).and_then(|h| self.limits.wait(h, now)) {
            return Err(w);
        }
        self.record(&mut keys, key, now);
        Ok(())
    }

    /// `check_and_hit` for several keys at once: all are counted, or none
    /// (the longest wait is returned).
    pub fn check_and_hit_all(&self, keys_to_hit: &[K], now: Instant) -> Result<(), Duration> {
        if self.limits.is_disabled() {
            return Ok(());
        }
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let wait = keys_to_hit
            .iter()
            .filter_map(|k| keys.get(k).and_then(|h| self.limits.wait(h, now)))
            .max();
        if let Some(w) = wait {
            return Err(w);
        }
        for k in keys_to_hit {
            self.record(&mut keys, k, now);
        }
        Ok(())
    }

    /// Number of keys held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.keys.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn evict(&self, keys: &mut HashMap<K, VecDeque<Instant>>, now: Instant) {
        let horizon = self.limits.max_window();
        keys.retain(|_, h| {
            h.back()
                .is_some_and(|t| now.saturating_duration_since(*t) < horizon)
        });
        if keys.len() < self.capacity {
            return;
        }
        let mut last: Vec<Instant> = keys.values().filter_map(|h| h.back().copied()).collect();
        let cut = (self.capacity / 10).max(1).min(last.len() - 1);
        let (_, pivot, _) = last.select_nth_unstable(cut);
        let pivot = *pivot;
        keys.retain(|_, h| h.back().is_some_and(|t| *t > pivot));
    }
}

/// The key failed authentications are counted under: the address, or its /64.
pub fn auth_key(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(_) => crate::net::cidr::mask(ip, 64),
        v4 => v4,
    }
}

/// Count a failed authentication of `client` towards the lock-out, in the log
/// line fail2ban matches — the same for the HTTP API, acme-dns calls and DNS
/// UPDATE over TCP.
pub fn note_failed_auth(
    limiter: &Limiter<std::net::IpAddr>,
    client: std::net::IpAddr,
    reason: &str,
    now: Instant,
) {
    let key = auth_key(client);
    // fail2ban: failregex = failed authentication from <HOST>
    log::warn!("failed authentication from {client}: {reason}");
    limiter.hit(&key, now);
    if let Some(wait) = limiter.blocked(&key, now) {
        log::warn!(
            "locking out {key} for {} s: too many failed authentications",
            crate::update::refusal::retry_after_secs(wait)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(s: &str) -> Limits {
        s.parse().unwrap()
    }

    #[test]
    fn parses_several_limits_and_units() {
        let l = limits("2/120s, 100/1d,10/m");
        assert_eq!(
            l.0[0],
            Limit {
                count: 2,
                window: Duration::from_secs(120)
            }
        );
        assert_eq!(l.0[1].window, Duration::from_secs(86_400));
        assert_eq!(l.0[2].window, Duration::from_secs(60));
        assert!(limits("").is_disabled());
        for bad in ["2", "0/1s", "2/5x"] {
            let e = bad.parse::<Limits>().expect_err(bad).to_string();
            assert!(e.starts_with(&format!("'{bad}' ")), "{e}");
        }
    }

    #[test]
    fn sliding_window_refuses_the_third_and_says_when() {
        let lim = Limiter::new(limits("2/10s"), 100);
        let t0 = Instant::now();
        if let Err(e) = lim.check_and_hit(&"a", t0) {
            panic!("{e:?}");
        }
        if let Err(e) = lim.check_and_hit(&"a", t0 + Duration::from_secs(3)) {
            panic!("{e:?}");
        }
        let wait = lim
            .check_and_hit(&"a", t0 + Duration::from_secs(4))
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(6));
        if let Err(e) = lim.check_and_hit(&"b", t0 + Duration::from_secs(4)) {
            panic!("{e:?}");
        }
        assert!(lim
            .check_and_hit(&"a", t0 + Duration::from_secs(10))
            .is_ok());
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_keys() {
        let lim = Limiter::new(limits("10/60s"), 1000);
        let t0 = Instant::now();
        for i in 0..100_000u32 {
            lim.hit(&i, t0 + Duration::from_micros(u64::from(i)));
            assert!(lim.len() <= 1000);
        }
        // The newest keys are still counted.
        lim.hit(&99_999, t0 + Duration::from_secs(1));
        assert!(lim.blocked(&99_999, t0 + Duration::from_secs(1)).is_none());
    }
}
