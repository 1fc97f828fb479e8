//! The internal hop between the edge and tiny_http: where tiny_http listens (a Unix
//! socket in a private directory), and the client identity the edge attaches to each request.
//!
//! The edge relays every client's requests over a few pooled connections, so
//! tiny_http cannot tell clients apart by connection. Instead each forwarded
//! request carries `X-Dedyn-Client: <key> <peer> <http|https>` (peer: `ADDR:PORT`,
//! or `unix:PATH` for a `unix:` listener, whose path config keeps free of spaces), written by the
//! edge after it has removed every copy the client sent. `key` is random per
//! start and known only to this process: a request that reached tiny_http any
//! other way (which the socket's private directory already prevents) cannot
//! name a client.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::peer::{ConnInfo, Peer};
use crate::os::private_dir::random_hex;

/// The request header that carries the client's identity over the internal hop.
pub const CLIENT_HEADER: &str = "X-Dedyn-Client";

/// Random bytes of the per-start key (hex-encoded in the header).
const KEY_BYTES: usize = 16;

/// What the edge and the service share about the internal hop.
#[derive(Debug)]
pub struct InternalHop {
    socket: PathBuf,
    key: String,
    connections: usize,
}

impl InternalHop {
    /// The hop to tiny_http listening on the Unix socket `socket`, with at most
    /// `connections` pooled connections from the edge, and a fresh key.
    pub fn new(socket: PathBuf, connections: usize) -> io::Result<InternalHop> {
        Ok(InternalHop {
            socket,
            key: random_hex(KEY_BYTES)?,
            connections: connections.max(1),
        })
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// How many connections the edge keeps to tiny_http at most (so how many
    /// connection threads tiny_http runs at most).
    pub fn connections(&self) -> usize {
        self.connections
    }

    /// The header line (with CRLF) the edge adds to a request from `client`.
    pub(crate) fn header_line(&self, client: &ConnInfo) -> String {
        let scheme = if client.tls { "https" } else { "http" };
        format!("{CLIENT_HEADER}: {} {} {scheme}\r\n", self.key, client.peer)
    }

    /// The client of a request, from the values of all its `X-Dedyn-Client`
    /// headers: exactly one, with this hop's key, well formed. `None` means the
    /// request did not come through the edge.
    pub fn client_of<'a>(&self, mut values: impl Iterator<Item = &'a str>) -> Option<ConnInfo> {
        let value = values.next()?;
        if values.next().is_some() {
            return None;
        }
        let mut words = value.split(' ');
        let (key, peer, scheme) = (words.next()?, words.next()?, words.next()?);
        if words.next().is_some() || !same(key.as_bytes(), self.key.as_bytes()) {
            return None;
        }
        let tls = match scheme {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        let peer = match peer.strip_prefix("unix:") {
            Some(path) if path.starts_with('/') => Peer::Unix(path.into()),
            Some(_) => return None,
            None => Peer::Tcp(peer.parse::<SocketAddr>().ok()?),
        };
        Some(ConnInfo { peer, tls })
    }
}

/// Equal bytes, in time independent of where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop() -> InternalHop {
        InternalHop::new("/x".into(), 2).expect("hop")
    }

    #[test]
    fn the_edge_header_round_trips() {
        let h = hop();
        for info in [
            ConnInfo {
                peer: Peer::Tcp("192.0.2.1:4567".parse().expect("addr")),
                tls: false,
            },
            ConnInfo {
                peer: Peer::Tcp("[2001:db8::1]:443".parse().expect("addr")),
                tls: true,
            },
            ConnInfo {
                peer: Peer::Unix("/run/dedyn-update/http.sock".into()),
                tls: false,
            },
        ] {
            let line = h.header_line(&info);
            let value = line
                .strip_prefix("X-Dedyn-Client: ")
                .and_then(|v| v.strip_suffix("\r\n"))
                .expect("header line");
            assert_eq!(h.client_of([value].into_iter()), Some(info.clone()));
        }
    }

    #[test]
    fn forged_missing_or_doubled_identity_is_refused() {
        let h = hop();
        let good = format!("{} 192.0.2.1:1 http", h.key);
        let other_key = hop();
        let forged = format!("{} 192.0.2.1:1 http", other_key.key);
        assert!(h.client_of(std::iter::empty()).is_none());
        assert!(h.client_of([forged.as_str()].into_iter()).is_none());
        assert!(h
            .client_of([good.as_str(), good.as_str()].into_iter())
            .is_none());
        for bad in [
            format!("{} 192.0.2.1 http", h.key),
            format!("{} 192.0.2.1:1 ftp", h.key),
            format!("{} 192.0.2.1:1 http extra", h.key),
            format!("{}  192.0.2.1:1 http", h.key),
            format!("{} unix:relative.sock http", h.key),
        ] {
            assert!(h.client_of([bad.as_str()].into_iter()).is_none(), "{bad}");
        }
        assert!(h.client_of([good.as_str()].into_iter()).is_some());
    }
}
