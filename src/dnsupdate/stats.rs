//! DNS messages counted by transport and rcode (SPEC 14: metrics by rcode and
//! transport), and the listeners' own counters; rendered for `/metrics`.
//!
//! Counted where the answer leaves (the listener's reply), from the answer's
//! header: whatever the intake decided, every message is counted once.

use super::job::Transport;
use crate::dns::wire::{Header, Rcode};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// The header's 4-bit rcode: 16 slots (extended rcodes need an OPT record;
/// the intake answers none but BADVERS, counted here by its low bits).
const RCODES: usize = 16;

/// Lock-free counters, bumped by the listeners and the workers' replies.
#[derive(Default)]
pub struct DnsStats {
    /// Per transport (UDP, TCP), per rcode of the answer sent.
    answered: [[AtomicU64; RCODES]; 2],
    /// Messages the intake chose not to answer (responses, unreadable headers,
    /// rate-limited UDP failures).
    unanswered: [AtomicU64; 2],
    /// Messages dropped because the worker queue was full.
    queue_full: [AtomicU64; 2],
    /// Messages dropped unread for their size (`max_request_head_bytes`).
    oversized: [AtomicU64; 2],
    /// TCP connections open now, and closed to make room for new ones.
    tcp_open: AtomicU64,
    tcp_evicted: AtomicU64,
    /// Accept and receive errors (EMFILE, ENOBUFS, ...), waited out and retried.
    socket_errors: AtomicU64,
}

fn slot(t: Transport) -> usize {
    match t {
        Transport::Udp => 0,
        Transport::Tcp => 1,
    }
}

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

impl DnsStats {
    /// Count one message by the answer sent for it (`None`: none was).
    pub fn note_answer(&self, t: Transport, answer: Option<&[u8]>) {
        match answer.and_then(Header::parse) {
            Some(h) => {
                let i = usize::from(h.rcode.to_u16() & 0x0F);
                self.answered[slot(t)][i].fetch_add(1, Ordering::Relaxed);
            }
            None => {
                self.unanswered[slot(t)].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn note_queue_full(&self, t: Transport) {
        self.queue_full[slot(t)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn note_oversized(&self, t: Transport) {
        self.oversized[slot(t)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn note_socket_error(&self) {
        self.socket_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn tcp_opened(&self) {
        self.tcp_open.fetch_add(1, Ordering::Relaxed);
    }

    pub fn tcp_closed(&self) {
        self.tcp_open.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn tcp_evicted(&self) {
        self.tcp_evicted.fetch_add(1, Ordering::Relaxed);
    }

    /// Messages answered with `rcode` over `t` so far (for tests).
    pub fn answered(&self, t: Transport, rcode: Rcode) -> u64 {
        load(&self.answered[slot(t)][usize::from(rcode.to_u16() & 0x0F)])
    }

    /// These counters in Prometheus text format 0.0.4, for the metrics page.
    pub fn render(&self) -> String {
        let mut out = String::new();
        family(
            &mut out,
            "dns_messages_total",
            "counter",
            "DNS UPDATE listener messages by transport and the rcode answered (NONE: not answered).",
        );
        for t in [Transport::Udp, Transport::Tcp] {
            for (i, n) in self.answered[slot(t)].iter().enumerate() {
                let n = load(n);
                if n > 0 {
                    let rcode = Rcode::from_u16(i as u16).name();
                    sample(
                        &mut out,
                        t,
                        "dns_messages_total",
                        &format!(",rcode=\"{rcode}\""),
                        n,
                    );
                }
            }
            let n = load(&self.unanswered[slot(t)]);
            if n > 0 {
                sample(&mut out, t, "dns_messages_total", ",rcode=\"NONE\"", n);
            }
        }
        for (name, help, counters) in [
            (
                "dns_queue_full_total",
                "DNS messages dropped because the worker queue was full.",
                &self.queue_full,
            ),
            (
                "dns_oversized_total",
                "DNS messages dropped for their size (server.max_request_head_bytes).",
                &self.oversized,
            ),
        ] {
            family(&mut out, name, "counter", help);
            for t in [Transport::Udp, Transport::Tcp] {
                sample(&mut out, t, name, "", load(&counters[slot(t)]));
            }
        }
        for (name, kind, help, v) in [
            (
                "dns_tcp_connections",
                "gauge",
                "DNS UPDATE TCP connections open now.",
                &self.tcp_open,
            ),
            (
                "dns_tcp_evictions_total",
                "counter",
                "DNS UPDATE TCP connections closed to make room (server.max_connections).",
                &self.tcp_evicted,
            ),
            (
                "dns_socket_errors_total",
                "counter",
                "Accept and receive errors on the DNS UPDATE listeners (retried).",
                &self.socket_errors,
            ),
        ] {
            family(&mut out, name, kind, help);
            let _ = writeln!(out, "dedyn_update_{name} {}", load(v));
        }
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP dedyn_update_{name} {help}");
    let _ = writeln!(out, "# TYPE dedyn_update_{name} {kind}");
}

fn sample(out: &mut String, t: Transport, name: &str, more_labels: &str, n: u64) {
    let _ = writeln!(
        out,
        "dedyn_update_{name}{{transport=\"{}\"{more_labels}}} {n}",
        t.as_str()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::wire::{Header, Message};

    fn answer(rcode: Rcode) -> Vec<u8> {
        let mut q = vec![0u8; 12];
        q[2] = 5 << 3; // opcode UPDATE
        let h = Header::parse(&q).unwrap();
        Message::bare_answer(&h, rcode).to_wire()
    }

    #[test]
    fn messages_are_counted_by_transport_and_the_rcode_answered() {
        let s = DnsStats::default();
        s.note_answer(Transport::Udp, Some(&answer(Rcode::NoError)));
        s.note_answer(Transport::Udp, Some(&answer(Rcode::NoError)));
        s.note_answer(Transport::Tcp, Some(&answer(Rcode::NotAuth)));
        s.note_answer(Transport::Udp, None);
        s.note_queue_full(Transport::Tcp);
        assert_eq!(s.answered(Transport::Udp, Rcode::NoError), 2);
        assert_eq!(s.answered(Transport::Tcp, Rcode::NoError), 0);
        let text = s.render();
        for line in [
            "dedyn_update_dns_messages_total{transport=\"udp\",rcode=\"NOERROR\"} 2",
            "dedyn_update_dns_messages_total{transport=\"tcp\",rcode=\"NOTAUTH\"} 1",
            "dedyn_update_dns_messages_total{transport=\"udp\",rcode=\"NONE\"} 1",
            "dedyn_update_dns_queue_full_total{transport=\"tcp\"} 1",
            "dedyn_update_dns_tcp_connections 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
    }
}
