//! One DNS message from bytes to answer, on a worker (SPEC 14's order of checks).

use super::job::Transport;
use crate::config::Config;
use crate::dns::wire::{Message, Opcode, Rcode};
use crate::publish::{LastUsed, Publisher};
use crate::ratelimit::Limiter;
use crate::update::ledger::Ledger;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Everything the workers share for DNS messages; the rate limiters are the
/// HTTP service's own (SPEC 14: counted together).
pub struct DnsService {
    pub config: Arc<Config>,
    pub publisher: Publisher,
    pub last_used: Arc<LastUsed>,
    pub dyndns_limiter: Arc<Limiter<i64>>,
    pub acme_limiter: Arc<Limiter<i64>>,
    pub failed_auth_limiter: Arc<Limiter<IpAddr>>,
}

impl DnsService {
    /// The DNS side of the service; the limiters are the HTTP service's.
    pub fn new(
        config: Arc<Config>,
        publisher: Publisher,
        last_used: Arc<LastUsed>,
        dyndns_limiter: Arc<Limiter<i64>>,
        acme_limiter: Arc<Limiter<i64>>,
        failed_auth_limiter: Arc<Limiter<IpAddr>>,
    ) -> DnsService {
        DnsService {
            config,
            publisher,
            last_used,
            dyndns_limiter,
            acme_limiter,
            failed_auth_limiter,
        }
    }

    /// The answer to one message (`None`: drop it), and the log line.
    pub fn answer(
        &self,
        _ledger: &mut dyn Ledger,
        message: &[u8],
        _source: SocketAddr,
        _transport: Transport,
    ) -> Option<Vec<u8>> {
        let msg = match Message::parse(message) {
            Ok(m) if !m.header.response => m,
            Ok(_) => return None,
            Err(e) => {
                let h = e.header.filter(|h| !h.response)?;
                return Some(Message::bare_answer(&h, Rcode::FormErr).to_wire());
            }
        };
        let rcode = match msg.header.opcode {
            Opcode::Query | Opcode::Update => Rcode::Refused,
            Opcode::Other(_) => Rcode::NotImp,
        };
        Some(Message::bare_answer(&msg.header, rcode).to_wire())
    }
}
