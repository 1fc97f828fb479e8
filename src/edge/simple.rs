//! TEMPORARY plain relay used until the bounded edge lands: accept, connect to the
//! internal socket, register the client, copy bytes both ways. No limits, no TLS.

use super::{ConnInfo, ConnTable, EdgeSettings};
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};

pub struct SimpleEdge {
    pub local_addrs: Vec<SocketAddr>,
}

pub fn start(
    settings: &EdgeSettings,
    internal: SocketAddr,
    table: ConnTable,
) -> io::Result<SimpleEdge> {
    let mut local_addrs = Vec::new();
    for addr in &settings.http_listen {
        let l = TcpListener::bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        local_addrs.push(l.local_addr()?);
        let table = table.clone();
        std::thread::spawn(move || loop {
            let Ok((client, peer)) = l.accept() else {
                continue;
            };
            let table = table.clone();
            std::thread::spawn(move || relay(client, peer, internal, table));
        });
    }
    Ok(SimpleEdge { local_addrs })
}

fn relay(
    client: TcpStream,
    peer: SocketAddr,
    internal: SocketAddr,
    table: ConnTable,
) -> io::Result<()> {
    let upstream = TcpStream::connect(internal)?;
    let port = upstream.local_addr()?.port();
    table.insert(port, ConnInfo { peer, tls: false });
    let (mut c2, mut u2) = (client.try_clone()?, upstream.try_clone()?);
    let t = std::thread::spawn(move || {
        let _ = io::copy(&mut c2, &mut u2);
        let _ = u2.shutdown(Shutdown::Write);
    });
    let (mut u, mut c) = (upstream, client);
    let _ = io::copy(&mut u, &mut c);
    let _ = c.shutdown(Shutdown::Both);
    let _ = t.join();
    table.remove(port);
    Ok(())
}
