//! A minimal DNS client (one UDP question, A/AAAA/SOA answers): `status` asks
//! the local nameserver what it serves right now, and the publisher asks
//! `verify_server` for the zone's serial after a reload.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

pub const A: u16 = 1;
pub const SOA: u16 = 6;
pub const AAAA: u16 = 28;

/// What came back for one question.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Answer {
    pub addresses: Vec<IpAddr>,
    pub soa_serial: Option<u32>,
}

/// Why a question got no usable answer. The caller names the server and the
/// question: these messages do not repeat them.
#[derive(Debug)]
pub enum QueryError {
    /// A label of the asked name is over 63 octets.
    LabelTooLong {
        name: String,
    },
    /// The local socket could not be opened or set up.
    Socket(io::Error),
    Send(io::Error),
    /// Nothing came back within the timeout.
    Timeout(Duration),
    /// ICMP port unreachable: no nameserver listens there.
    Refused,
    Receive(io::Error),
    /// Answers came only from other addresses than the server's.
    OnlyFromOthers,
    /// The answer does not parse, or answers another question.
    Malformed,
    /// An rcode other than NOERROR and NXDOMAIN.
    Rcode(u8),
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::LabelTooLong { name } => write!(f, "label too long in {name}"),
            QueryError::Socket(e) => write!(f, "{e}"),
            QueryError::Send(e) => write!(f, "cannot send the query: {e}"),
            QueryError::Timeout(t) => write!(f, "no answer within {} s", t.as_secs_f64()),
            QueryError::Refused => {
                f.write_str("no answer: nothing listens there (connection refused)")
            }
            QueryError::Receive(e) => write!(f, "no answer ({e})"),
            QueryError::OnlyFromOthers => {
                f.write_str("no answer from that address (only from others)")
            }
            QueryError::Malformed => f.write_str("malformed DNS response"),
            QueryError::Rcode(rcode) => write!(f, "nameserver answered with rcode {rcode}"),
        }
    }
}

impl std::error::Error for QueryError {}

fn encode_name(name: &str, out: &mut Vec<u8>) -> Result<(), QueryError> {
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        if label.len() > 63 {
            return Err(QueryError::LabelTooLong { name: name.into() });
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    Ok(())
}

/// Skip a (possibly compressed) name starting at `pos`; returns the position after it.
fn skip_name(msg: &[u8], mut pos: usize) -> Option<usize> {
    for _ in 0..128 {
        let len = *msg.get(pos)?;
        match len {
            0 => return Some(pos + 1),
            l if l & 0xC0 == 0xC0 => return Some(pos + 2),
            l => pos += 1 + l as usize,
        }
    }
    None
}

fn u16_at(msg: &[u8], pos: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.get(pos)?, *msg.get(pos + 1)?]))
}

/// Parse the answer section of a response to question `id` (pure, unit-tested).
pub fn parse(msg: &[u8], id: u16) -> Result<Answer, QueryError> {
    let bad = || QueryError::Malformed;
    if msg.len() < 12 || u16_at(msg, 0) != Some(id) {
        return Err(bad());
    }
    let rcode = msg[3] & 0x0F;
    if rcode != 0 && rcode != 3 {
        return Err(QueryError::Rcode(rcode));
    }
    let qd = u16_at(msg, 4).ok_or_else(bad)?;
    let an = u16_at(msg, 6).ok_or_else(bad)?;
    let mut pos = 12;
    for _ in 0..qd {
        pos = skip_name(msg, pos).ok_or_else(bad)? + 4;
    }
    let mut answer = Answer::default();
    for _ in 0..an {
        pos = skip_name(msg, pos).ok_or_else(bad)?;
        let rtype = u16_at(msg, pos).ok_or_else(bad)?;
        let rdlen = u16_at(msg, pos + 8).ok_or_else(bad)? as usize;
        let rdata = msg.get(pos + 10..pos + 10 + rdlen).ok_or_else(bad)?;
        match (rtype, rdlen) {
            (A, 4) => answer
                .addresses
                .push(IpAddr::from(<[u8; 4]>::try_from(rdata).map_err(|_| bad())?)),
            (AAAA, 16) => answer.addresses.push(IpAddr::from(
                <[u8; 16]>::try_from(rdata).map_err(|_| bad())?,
            )),
            (SOA, _) => {
                let p = skip_name(rdata, 0)
                    .and_then(|p| skip_name(rdata, p))
                    .ok_or_else(bad)?;
                let s = rdata.get(p..p + 4).ok_or_else(bad)?;
                answer.soa_serial = Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]));
            }
            _ => {}
        }
        pos += 10 + rdlen;
    }
    answer.addresses.sort();
    Ok(answer)
}

/// Ask `server` one question over UDP (no recursion), with a timeout.
pub fn query(
    server: SocketAddr,
    name: &str,
    qtype: u16,
    timeout: Duration,
) -> Result<Answer, QueryError> {
    let id = (std::process::id() as u16) ^ (crate::os::clock::now_unix() as u16);
    let mut msg = Vec::with_capacity(64);
    msg.extend_from_slice(&id.to_be_bytes());
    msg.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    encode_name(name, &mut msg)?;
    msg.extend_from_slice(&qtype.to_be_bytes());
    msg.extend_from_slice(&1u16.to_be_bytes());
    let bind = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let sock = UdpSocket::bind(bind).map_err(QueryError::Socket)?;
    sock.set_read_timeout(Some(timeout))
        .map_err(QueryError::Socket)?;
    sock.send_to(&msg, server).map_err(QueryError::Send)?;
    let mut buf = [0u8; 4096];
    for _ in 0..8 {
        let (n, from) = sock.recv_from(&mut buf).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => QueryError::Timeout(timeout),
            io::ErrorKind::ConnectionRefused => QueryError::Refused,
            _ => QueryError::Receive(e),
        })?;
        if from == server {
            return parse(&buf[..n], id);
        }
    }
    Err(QueryError::OnlyFromOthers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_compressed_answer_and_soa() {
        let mut m = vec![0x12, 0x34, 0x84, 0x00, 0, 1, 0, 2, 0, 0, 0, 0];
        encode_name("a.example", &mut m).unwrap();
        m.extend_from_slice(&[0, 1, 0, 1]);
        // A answer with a pointer to the question name at offset 12
        m.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
        // SOA answer: mname, rname, serial 7, four more numbers
        let mut rdata = Vec::new();
        encode_name("ns1.example", &mut rdata).unwrap();
        rdata.extend_from_slice(&[0xC0, 12]);
        rdata.extend_from_slice(&7u32.to_be_bytes());
        rdata.extend_from_slice(&[0; 16]);
        m.extend_from_slice(&[0xC0, 12, 0, 6, 0, 1, 0, 0, 0, 60]);
        m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        m.extend_from_slice(&rdata);
        let a = parse(&m, 0x1234).unwrap();
        assert_eq!(a.addresses, vec!["192.0.2.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(a.soa_serial, Some(7));
        assert_eq!(
            parse(&m, 0x9999).unwrap_err().to_string(),
            "malformed DNS response"
        );
        assert_eq!(
            parse(&m[..20], 0x1234).unwrap_err().to_string(),
            "malformed DNS response"
        );
    }
}
