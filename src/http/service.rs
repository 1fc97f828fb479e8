//! One update request from intake to reply: checkip, the lock-out, the pipeline's
//! plan, the per-domain rate limit, the store's write, and the reply with its
//! outcome and receipt headers. Independent of tiny_http (see `intake`).

use super::metrics::Counters;
use crate::config::settings::Config;
use crate::edge::{ConnInfo, InternalHop};
use crate::os::clock::now_unix;
use crate::publish::{LastUsed, Publisher};
use crate::ratelimit::{auth_key, note_failed_auth, Limiter};
use crate::update::ledger::{Applied, Ledger, Provenance, Via};
use crate::update::{self, address::Family, Refusal};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// Limiter keys are bounded: a flood from many addresses evicts old keys.
const LIMITER_CAPACITY: usize = 100_000;

/// Everything the workers share.
pub struct Service {
    pub config: Arc<Config>,
    /// Tells which client each request comes from (the edge's header).
    pub hop: Arc<InternalHop>,
    pub publisher: Publisher,
    pub last_used: Arc<LastUsed>,
    /// Shared with the DNS UPDATE intake (SPEC 14: counted together).
    pub dyndns_limiter: Arc<Limiter<i64>>,
    pub failed_auth_limiter: Arc<Limiter<IpAddr>>,
    pub checkip_limiter: Limiter<IpAddr>,
    /// acme-dns calls per registered domain (SPEC 10).
    pub acme_limiter: Arc<Limiter<i64>>,
    pub counters: Arc<Counters>,
}

/// A response before it goes on the wire.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
    /// `text/plain` for the dyndns2 words, `application/json` for acme-dns.
    pub content_type: &'static str,
}

impl Reply {
    /// A refusal as HTTP: status, body and headers all come from its one table.
    pub fn refusal(r: &Refusal) -> Reply {
        Reply {
            status: r.status(),
            body: r.body(),
            headers: r.headers(),
            content_type: "text/plain",
        }
    }

    /// `200` with a plain body (`good`, or checkip's address).
    pub fn ok(body: String, headers: Vec<(&'static str, String)>) -> Reply {
        Reply {
            status: 200,
            body,
            headers,
            content_type: "text/plain",
        }
    }
}

fn update_result(applied: &Applied) -> String {
    let mut parts = Vec::with_capacity(applied.outcomes.len() * 2);
    for (name, out) in &applied.outcomes {
        for f in Family::BOTH {
            parts.push(format!("{name} {} {}", f.rtype(), out[f as usize].as_str()));
        }
    }
    parts.join(";")
}

fn zone_serial(applied: &Applied) -> Option<String> {
    match applied.serials.as_slice() {
        [] => None,
        [(_, s)] => Some(s.to_string()),
        many => Some(
            many.iter()
                .map(|(z, s)| format!("{z} {s}"))
                .collect::<Vec<_>>()
                .join(", "),
        ),
    }
}

/// The inputs of one request, independent of tiny_http.
pub struct Incoming<'a> {
    pub method: &'a str,
    pub target: &'a str,
    pub host: Option<&'a str>,
    pub authorization: Option<&'a str>,
    /// acme-dns's credentials and body (SPEC 10); empty for other requests.
    pub api_user: Option<&'a str>,
    pub api_key: Option<&'a str>,
    pub body: &'a [u8],
    /// The client: the connection's peer, or the forwarded address when the
    /// peer is a trusted proxy.
    pub client: IpAddr,
    pub conn: ConnInfo,
}

impl Service {
    pub fn new(
        config: Arc<Config>,
        hop: Arc<InternalHop>,
        publisher: Publisher,
        last_used: Arc<LastUsed>,
    ) -> Service {
        let rl = &config.rate_limit;
        Service {
            dyndns_limiter: Arc::new(Limiter::new(rl.dyndns_per_domain.clone(), LIMITER_CAPACITY)),
            failed_auth_limiter: Arc::new(Limiter::new(
                rl.failed_auth_per_ip.clone(),
                LIMITER_CAPACITY,
            )),
            checkip_limiter: Limiter::new(rl.checkip_per_ip.clone(), LIMITER_CAPACITY),
            acme_limiter: Arc::new(Limiter::new(rl.acme_per_domain.clone(), LIMITER_CAPACITY)),
            config,
            hop,
            publisher,
            last_used,
            counters: Arc::default(),
        }
    }

    /// Handle one request; returns the reply and a log summary (never a secret).
    /// A refusal ends it at the step that refused: `Err` carries its log summary.
    pub fn process(&self, ledger: &mut dyn Ledger, rq: &Incoming) -> (Reply, String) {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        if rq.host.is_some_and(|h| self.is_checkip_host(h)) {
            return self.checkip(rq.client, now);
        }
        if crate::update::acme::is_acme_call(rq.method, rq.target) {
            return self.acme(ledger, rq, now);
        }
        match self.update(ledger, rq, now) {
            Ok(done) => done,
            Err((r, summary)) => (Reply::refusal(&r), summary),
        }
    }

    /// SPEC 8 checkip: `Host` matched case-insensitively, port ignored.
    fn is_checkip_host(&self, host: &str) -> bool {
        let h = host
            .rsplit_once(':')
            .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(h, _)| h);
        let h = h.trim_end_matches('.').to_ascii_lowercase();
        self.config.server.checkip_hosts.contains(&h)
    }

    /// The update request: method and path, the lock-out, the plan, the rate
    /// limit, the write, and the `good` reply with its outcome and receipt.
    fn update(
        &self,
        ledger: &mut dyn Ledger,
        rq: &Incoming,
        now: Instant,
    ) -> Result<(Reply, String), (Refusal, String)> {
        let refused = |r: Refusal| {
            let summary = r.to_string();
            (r, summary)
        };
        let req = update::Request::from_target(
            rq.method,
            rq.target,
            rq.authorization,
            rq.client,
            rq.conn.tls,
        );
        update::check_path_and_method(req.method, req.path).map_err(refused)?;
        let key = auth_key(rq.client);
        if let Some(wait) = self.failed_auth_limiter.blocked(&key, now) {
            self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
            let r = Refusal::RateLimited(wait);
            let summary = format!("locked out after failed authentications: {r}");
            return Err((r, summary));
        }
        let plan = update::plan(&req, ledger, self.config.as_ref(), now_unix())
            .map_err(|r| self.count_failed_auth(r, rq.client, now))
            .map_err(refused)?;
        let names: Vec<&str> = plan.names.iter().map(|n| n.name.as_str()).collect();
        // All of the request's domains are counted, or none: a refused request
        // must not use up the budget of the domains that had room.
        if let Err(wait) = self.dyndns_limiter.check_and_hit_all(&plan.domains(), now) {
            self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
            let r = Refusal::RateLimited(wait);
            let summary = format!("{} {r}", names.join(","));
            return Err((r, summary));
        }
        let from = Provenance {
            via: Via::Http,
            client: Some(rq.client),
            token: Some(plan.token_id),
        };
        let applied = ledger
            .apply(
                &plan.names,
                &from,
                plan.owner,
                &update::outcome::decide,
                &self.config.limits,
            )
            .map_err(|e| refused(e.refusal("update", "update", &names.join(","))))?;
        // Last seen, changed or not (SPEC 15): in memory, written in batches.
        self.last_used.note_update(
            Some(plan.token_id),
            plan.names
                .iter()
                .zip(&applied.records)
                .map(|(n, [a, aaaa])| {
                    let changed = a.before != a.after || aaaa.before != aaaa.after;
                    (n.name.as_str(), n.zone.as_str(), n.domain_id, changed)
                }),
        );
        Ok(self.good(&applied))
    }

    /// A failed authentication with credentials counts towards the lock-out and
    /// is logged in the line fail2ban matches.
    fn count_failed_auth(&self, r: Refusal, client: IpAddr, now: Instant) -> Refusal {
        if let Refusal::BadAuth {
            counted: true,
            reason,
        } = &r
        {
            self.note_failed_auth(client, reason, now);
        }
        r
    }

    /// Count a failed authentication towards the lock-out, in the log line
    /// fail2ban matches (also for acme-dns calls).
    pub(super) fn note_failed_auth(&self, client: IpAddr, reason: &str, now: Instant) {
        self.counters.failed_auth.fetch_add(1, Ordering::Relaxed);
        note_failed_auth(&self.failed_auth_limiter, client, reason, now);
    }

    /// `200 good` with `X-Update-Result`, and `X-Zone-Serial` when something changed
    /// (then the publisher is woken).
    fn good(&self, applied: &Applied) -> (Reply, String) {
        let result = update_result(applied);
        let mut headers = vec![("X-Update-Result", result.clone())];
        if let Some(serial) = zone_serial(applied) {
            headers.push(("X-Zone-Serial", serial));
            self.counters
                .updates_applied
                .fetch_add(1, Ordering::Relaxed);
            self.publisher.changed();
        } else {
            self.counters
                .updates_unchanged
                .fetch_add(1, Ordering::Relaxed);
        }
        (Reply::ok("good".into(), headers), result)
    }

    fn checkip(&self, client: IpAddr, now: Instant) -> (Reply, String) {
        if let Err(wait) = self.checkip_limiter.check_and_hit(&auth_key(client), now) {
            let r = Refusal::RateLimited(wait);
            return (Reply::refusal(&r), format!("checkip {r}"));
        }
        (Reply::ok(client.to_string(), vec![]), "checkip".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn failed_auth_counts_ipv6_by_64() {
        assert_eq!(auth_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(auth_key(ip("192.0.2.9")), ip("192.0.2.9"));
    }
}
