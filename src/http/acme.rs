//! The acme-dns calls on the update service (SPEC 10): `POST /update` from intake
//! to JSON reply — the same lock-out, workers, store transaction and receipt as an
//! address update, its own per-domain rate limit — and `POST /register`, refused.

use super::service::{Incoming, Reply, Service};
use crate::ratelimit::auth_key;
use crate::update::acme::{self, from_update, Call};
use crate::update::ledger::{AcmeWriter, Ledger, LedgerError};
use crate::update::refusal::AcmeRefusal;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl Reply {
    /// A JSON answer (SPEC 10): status, body and headers all from the refusal table.
    fn acme_refusal(r: &AcmeRefusal) -> Reply {
        Reply {
            status: r.status(),
            body: r.body(),
            headers: r.headers(),
            content_type: "application/json",
        }
    }
}

impl Service {
    /// Answer one acme-dns call; returns the reply and a log summary (no secret).
    pub fn acme(&self, ledger: &mut dyn Ledger, rq: &Incoming, now: Instant) -> (Reply, String) {
        let (reply, summary) = match self.acme_update(ledger, rq, now) {
            Ok(done) => done,
            Err(r) => {
                self.counters.acme_refused.fetch_add(1, Ordering::Relaxed);
                let summary = format!("acme-dns: {r}");
                (Reply::acme_refusal(&r), summary)
            }
        };
        (reply, summary)
    }

    fn acme_update(
        &self,
        ledger: &mut dyn Ledger,
        rq: &Incoming,
        now: Instant,
    ) -> Result<(Reply, String), AcmeRefusal> {
        if rq.target.split('?').next() == Some("/register") {
            return Err(AcmeRefusal::Forbidden(
                "accounts are made with the CLI (token add --scope acme)".into(),
            ));
        }
        let key = auth_key(rq.client);
        if let Some(wait) = self.failed_auth_limiter.blocked(&key, now) {
            self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
            return Err(AcmeRefusal::RateLimited(wait));
        }
        let call = Call {
            user: rq.api_user,
            key: rq.api_key,
            body: rq.body,
            client: rq.client,
        };
        let write = acme::plan(
            &call,
            ledger,
            self.config.as_ref(),
            crate::os::clock::now_unix(),
        )
        .map_err(|r| self.count_failed_acme_auth(r, rq.client, now))?;
        if let Err(wait) = self.acme_limiter.check_and_hit(&write.domain.id, now) {
            self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
            return Err(AcmeRefusal::RateLimited(wait));
        }
        let who = AcmeWriter::Token {
            id: write.token_id,
            owner: write.owner,
        };
        let serial = ledger
            .acme_set(
                &write.domain,
                &write.name,
                &write.value,
                who,
                &self.config.limits,
            )
            .map_err(|e| match e {
                // SPEC 17: the bound's own word, not bad_subdomain.
                LedgerError::OverLimit(m) => AcmeRefusal::NamesPerDomain(m),
                e => from_update(e.refusal("call", "acme-dns update", &write.name)),
            })?;
        self.last_used.note(write.token_id);
        self.counters.acme_updates.fetch_add(1, Ordering::Relaxed);
        self.publisher.changed();
        let reply = Reply {
            status: 200,
            body: acme::ok_body(&write.value),
            headers: vec![("X-Zone-Serial", serial.to_string())],
            content_type: "application/json",
        };
        Ok((
            reply,
            format!("acme-dns {} TXT set", acme::challenge_name(&write.name)),
        ))
    }

    /// Credentials that were presented and failed count towards the lock-out,
    /// exactly as for address updates.
    fn count_failed_acme_auth(&self, r: AcmeRefusal, client: IpAddr, now: Instant) -> AcmeRefusal {
        if let AcmeRefusal::Unauthorized {
            counted: true,
            reason,
        } = &r
        {
            self.note_failed_auth(client, reason, now);
        }
        r
    }
}
