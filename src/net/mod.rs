//! Leaf types every layer shares: address ranges, host names, and the tiny DNS
//! client that asks a nameserver what it serves. No I/O beyond that client's UDP socket.

pub mod cidr;
pub mod dnsquery;
pub mod name;
