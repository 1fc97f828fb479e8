//! One DNS message on its way from a listener to a worker and its answer back:
//! the bytes, who sent them over which transport, and where the answer goes.

use std::net::SocketAddr;

/// How a message arrived. UDP sources can be spoofed: a failure there never
/// locks an address out (SPEC 14); TCP failures count like HTTP ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// Where a worker sends the answer (`None`: no answer, the message is dropped).
pub type Reply = Box<dyn FnOnce(Option<Vec<u8>>) + Send>;

/// A complete message (for TCP without its two-byte length) to answer.
pub struct DnsJob {
    pub message: Vec<u8>,
    pub source: SocketAddr,
    pub transport: Transport,
    pub reply: Reply,
}

/// How a listener hands a job to the worker pool: `false` when the pool's
/// queue is full (the job is dropped; over UDP the client retries).
pub type Submit = dyn Fn(DnsJob) -> bool + Send + Sync;
