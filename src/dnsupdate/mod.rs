//! DNS UPDATE (RFC 2136) with TSIG (RFC 8945), the second intake (SPEC 14): UDP
//! and TCP listeners hand each message to the same worker pool as HTTP; a
//! worker checks its TSIG, translates the UPDATE into the rules' terms, writes
//! it through the same `Ledger` in one transaction, and answers with an rcode.

pub mod intake;
pub mod job;
pub mod judge;
pub mod listen;
pub mod rcode;
pub mod stats;
pub mod translate;
