//! What the workers saw, kept in memory and written in batches by the
//! publisher's coordinator: token last-used times and name last-seen times
//! (SPEC 15: no database write per unchanged update).

use super::feed::Seen;
use crate::os::clock::now_unix;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// How often token last-used and name last-seen times are written (coalesced:
/// one write per batch; SPEC 15 allows last seen to lag by up to 60 s).
const LAST_USED_FLUSH: Duration = Duration::from_secs(30);

/// What the workers saw, written in batches by the coordinator: token id →
/// last use, and name → last seen (SPEC 15: no database write per unchanged
/// update; it may lag by up to a flush interval).
#[derive(Default)]
pub struct LastUsed(Mutex<Noted>);

#[derive(Default)]
struct Noted {
    tokens: HashMap<i64, i64>,
    /// name → (zone, domain id, seen, changed: unix times).
    names: HashMap<String, (String, i64, i64, Option<i64>)>,
}

impl LastUsed {
    pub fn note(&self, token: i64) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .tokens
            .insert(token, now_unix());
    }

    /// An authenticated update: its token, and each name it named (zone,
    /// domain id, whether its records changed). A name seen before costs no
    /// allocation.
    pub fn note_update<'a>(
        &self,
        token: Option<i64>,
        names: impl IntoIterator<Item = (&'a str, &'a str, i64, bool)>,
    ) {
        let now = now_unix();
        let mut noted = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = token {
            noted.tokens.insert(t, now);
        }
        for (name, zone, domain, changed) in names {
            let changed_at = changed.then_some(now);
            match noted.names.get_mut(name) {
                Some(seen) if seen.1 == domain => {
                    seen.2 = now;
                    seen.3 = changed_at.or(seen.3);
                }
                _ => {
                    noted.names.insert(
                        name.to_string(),
                        (zone.to_string(), domain, now, changed_at),
                    );
                }
            }
        }
    }

    pub(super) fn take(&self) -> (Vec<(i64, i64)>, Vec<Seen>) {
        let mut noted = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let tokens = noted.tokens.drain().collect();
        let names = noted
            .names
            .drain()
            .map(|(name, (zone, domain, at, changed))| Seen {
                name,
                zone,
                domain,
                at,
                changed,
            })
            .collect();
        (tokens, names)
    }
}

/// How often what the workers saw is written: every `LAST_USED_FLUSH`, or with
/// `[events] stale_after` at least twice within it (a name updated in time must
/// not be found stale for want of a flush), at least a second apart.
pub fn flush_every(stale_after: Option<Duration>) -> Duration {
    stale_after.map_or(LAST_USED_FLUSH, |s| {
        (s / 2).clamp(Duration::from_secs(1), LAST_USED_FLUSH)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An update notes its token and every name it named; a flush takes them
    /// all once, and a name noted twice is written once.
    #[test]
    fn names_seen_are_taken_once_per_flush() {
        let seen = LastUsed::default();
        seen.note_update(Some(7), [("a.dedyn.example", "dedyn.example", 1, true)]);
        seen.note_update(
            Some(7),
            [
                ("a.dedyn.example", "dedyn.example", 1, false),
                ("b.a.dedyn.example", "dedyn.example", 1, false),
            ],
        );
        let (tokens, mut names) = seen.take();
        assert_eq!(tokens.len(), 1);
        names.sort_by(|a, b| a.name.cmp(&b.name));
        let got: Vec<&str> = names.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(got, ["a.dedyn.example", "b.a.dedyn.example"]);
        assert!(
            names[0].changed.is_some(),
            "a later unchanged update keeps the change"
        );
        assert!(names[1].changed.is_none());
        assert_eq!(seen.take(), (vec![], vec![]));
    }

    #[test]
    fn a_short_stale_after_flushes_more_often() {
        assert_eq!(flush_every(None), LAST_USED_FLUSH);
        assert_eq!(
            flush_every(Some(Duration::from_secs(4))),
            Duration::from_secs(2)
        );
        assert_eq!(
            flush_every(Some(Duration::from_secs(1))),
            Duration::from_secs(1)
        );
        assert_eq!(
            flush_every(Some(Duration::from_secs(86_400))),
            LAST_USED_FLUSH
        );
    }
}
