//! One client connection from accept to close, on its own small thread: TLS handshake,
//! reading each request head under its deadline, relaying it to tiny_http over a pooled
//! connection and the answer back.
//!
//! Requests are relayed one at a time: the edge reads a whole request (head and
//! body) from the client, forwards it, reads the whole response (until the
//! framer says it is complete) and gives the pooled connection back, then
//! writes the response to the client, then waits for the next request. So the
//! connection is evictable exactly while it has no complete request, every
//! blocking read has a deadline (see `os::sys::wait_readable`), and a client
//! that does not read holds up only its own thread (SPEC 17).

use crate::os::sys;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection};

use super::backend::{CheckoutError, Lease};
use super::http::{self, EdgeAnswer, HeadError, RequestHead, ResponseFramer};
use super::limits::Slot;
use super::peer::{ConnInfo, Peer};
use super::shared::Shared;
use super::stream::ClientStream;

/// Request bodies the edge buffers at most; update requests have none.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;
/// A client that does not take its response (or a handshake flight) this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// tiny_http's handler must answer within this; after it the client gets 504.
/// (The wait for a free pooled connection counts towards it.)
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// After answering and before closing, unread input is drained this long, so
/// the kernel does not answer it with a RST that destroys our response.
const LINGER: Duration = Duration::from_millis(500);
const LINGER_BYTES: usize = 64 * 1024;
const READ_CHUNK: usize = 16 * 1024;
/// A response from tiny_http is buffered whole, up to this; the service's
/// answers are a few hundred bytes, so a larger one is a fault there (502).
pub(crate) const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// Why a connection ended (logged at debug level).
#[derive(Debug)]
pub(crate) enum End {
    /// The client closed, or the edge closed after a `Connection: close` exchange.
    Closed,
    /// Handshake or request head not complete in time, or keep-alive idle too long.
    Timeout(&'static str),
    /// Made room for a new client, or the edge is shutting down.
    Evicted,
    /// The edge answered with this status and closed.
    Refused(u16),
    Io(io::Error),
    Tls(rustls::Error),
    /// tiny_http could not be reached or sent nonsense.
    Backend(String),
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            End::Closed => f.write_str("closed"),
            End::Timeout(what) => write!(f, "{what} timed out"),
            End::Evicted => f.write_str("evicted"),
            End::Refused(status) => write!(f, "refused with {status}"),
            End::Io(e) => write!(f, "i/o error: {e}"),
            End::Tls(e) => write!(f, "TLS error: {e}"),
            End::Backend(e) => write!(f, "internal server: {e}"),
        }
    }
}

/// Runs one admitted connection to its end. Called on the connection's thread.
pub(crate) fn run(
    shared: Arc<Shared>,
    stream: Arc<ClientStream>,
    peer: Peer,
    tls: Option<Arc<ServerConfig>>,
    slot: Slot,
    accepted: Instant,
) {
    let info = ConnInfo {
        peer: peer.clone(),
        tls: tls.is_some(),
    };
    let tls = match tls.map(ServerConnection::new).transpose() {
        Ok(t) => t.map(Box::new),
        Err(e) => {
            log::error!("cannot start TLS for {peer}: {e}");
            return;
        }
    };
    // Small answers go out at once instead of waiting for Nagle's algorithm.
    stream.set_nodelay();
    if let Err(e) = stream.set_write_timeout(Some(WRITE_TIMEOUT)) {
        log::warn!("cannot set a write timeout for {peer}: {e}");
        return;
    }
    // The same for every request of this connection: made once.
    let identity = shared.backends.hop().header_line(&info);
    let mut conn = Conn {
        shared,
        slot,
        client: ClientIo { stream, tls },
        info,
        identity,
        scratch: vec![0; READ_CHUNK],
        response: Vec::new(),
    };
    let end = conn.serve(accepted);
    log::debug!("connection from {peer} ended: {end}");
}

struct Conn {
    shared: Arc<Shared>,
    client: ClientIo,
    info: ConnInfo,
    /// The `X-Dedyn-Client` line the hop adds to each forwarded request.
    identity: String,
    scratch: Vec<u8>,
    /// The response being relayed, read whole before it goes to the client.
    response: Vec<u8>,
    /// Last: fields drop in order, so the slot is freed (and with it the
    /// registry's handle on the client socket) once everything else is gone.
    slot: Slot,
}

/// How one attempt at a request over a pooled connection ended.
enum Attempt {
    /// Over, either way.
    Done(Fetched),
    /// A reused connection turned out closed before tiny_http read the request
    /// (it closed it while idle): try a fresh one.
    Stale,
}

/// What the edge has to tell the client once the pooled connection is back.
enum Fetched {
    /// The whole response is in `Conn::response`; whether the client
    /// connection may go on after it.
    Response(bool),
    /// No usable response: the client gets this answer, and the connection ends.
    Failed(EdgeAnswer, End),
}

impl Conn {
    fn serve(&mut self, accepted: Instant) -> End {
        let settings = &self.shared.settings;
        if let Err(end) = self.client.handshake(accepted + settings.handshake_timeout) {
            return end;
        }
        // Bytes from the client not yet forwarded (a pipelined request may follow).
        let mut buf = Vec::new();
        // The first head's clock runs from when the client could start sending it.
        let mut head_start = Some(if self.client.tls.is_some() {
            Instant::now()
        } else {
            accepted
        });
        loop {
            let req = match self.read_request(&mut buf, head_start.take()) {
                Ok(req) => req,
                Err(end) => return end,
            };
            if !self.slot.serving() {
                return End::Evicted;
            }
            let total = req.head_len + req.body_len;
            let keep_alive = match self.relay(&buf[..total], &req) {
                Ok(keep_alive) => keep_alive,
                Err(end) => {
                    self.client.close();
                    return end;
                }
            };
            buf.drain(..total);
            if !keep_alive {
                self.client.close();
                return End::Closed;
            }
            if !self.slot.waiting(Instant::now()) {
                self.client.close();
                return End::Evicted;
            }
        }
    }

    /// Reads until `buf` starts with a complete request (head and body). `start`
    /// is when the head's clock started; `None` after a response, when the
    /// connection first idles until the next request begins.
    fn read_request(
        &mut self,
        buf: &mut Vec<u8>,
        start: Option<Instant>,
    ) -> Result<RequestHead, End> {
        let settings = &self.shared.settings;
        let max_head = settings.max_head_bytes.max(64);
        let start = match start {
            Some(t) => t,
            None => {
                let idle_deadline = Instant::now() + settings.idle_timeout;
                loop {
                    let skip = http::leading_empty_lines(buf);
                    buf.drain(..skip);
                    if !buf.is_empty() {
                        break;
                    }
                    match self.client.read_into(buf, max_head, idle_deadline) {
                        Ok(_) => {}
                        Err(End::Timeout(_)) => {
                            self.client.close();
                            return Err(End::Timeout("keep-alive idle"));
                        }
                        Err(end) => return Err(end),
                    }
                }
                // Measured from the first byte of the head, not the last: a
                // trickling client cannot keep extending its deadline.
                Instant::now()
            }
        };
        let deadline = start + settings.head_timeout;

        let head_len = loop {
            let skip = http::leading_empty_lines(buf);
            buf.drain(..skip);
            match http::find_head_end(buf) {
                Some(end) if end <= max_head => break end,
                Some(_) => return Err(self.refuse(EdgeAnswer::HeadTooLarge)),
                None if buf.len() >= max_head => {
                    return Err(self.refuse(EdgeAnswer::HeadTooLarge));
                }
                None => {}
            }
            self.read_or_time_out(buf, max_head - buf.len(), deadline)?;
        };

        let req = match http::parse_request_head(&buf[..head_len], MAX_BODY_BYTES) {
            Ok(req) => req,
            Err(e) => {
                if let HeadError::Malformed(why) = &e {
                    log::debug!("malformed request from {}: {why}", self.info.peer);
                }
                return Err(self.refuse(e.answer()));
            }
        };

        // The body is part of the request: until it is all here the connection
        // stays evictable and under the same deadline, so a client cannot
        // escape the head timeout by announcing a body and never sending it.
        let total = req.head_len + req.body_len;
        if buf.len() < total && req.expect_continue {
            self.client.write_all(http::CONTINUE).map_err(End::Io)?;
        }
        while buf.len() < total {
            self.read_or_time_out(buf, total - buf.len(), deadline)?;
        }
        Ok(req)
    }

    /// One read towards a request under `deadline`; on timeout, a client that
    /// started a request hears 408, one that sent nothing is just closed.
    fn read_or_time_out(
        &mut self,
        buf: &mut Vec<u8>,
        room: usize,
        deadline: Instant,
    ) -> Result<(), End> {
        match self.client.read_into(buf, room, deadline) {
            Ok(_) => Ok(()),
            Err(End::Timeout(_)) if buf.is_empty() => {
                self.client.close();
                Err(End::Timeout("request head"))
            }
            Err(End::Timeout(_)) => {
                self.refuse(EdgeAnswer::Timeout);
                Err(End::Timeout("request head"))
            }
            Err(end) => Err(end),
        }
    }

    /// Answers from the edge itself and closes the connection.
    fn refuse(&mut self, answer: EdgeAnswer) -> End {
        // Closing may linger a moment: let it be evicted meanwhile.
        let _ = self.slot.waiting(Instant::now());
        let _ = self.client.write_all(&http::edge_response(answer));
        self.client.close();
        End::Refused(answer.status().0)
    }

    /// Forwards one complete request to tiny_http over a pooled connection, with
    /// the client's identity, and relays the response. Returns whether the
    /// client connection may carry another request.
    ///
    /// The response is read whole into `response` and the pooled connection
    /// given back before a byte goes to the client: a client that does not
    /// read its answers blocks only its own thread, never the internal hop
    /// (SPEC 17). Until that write is done, this connection's next pipelined
    /// request is not read, so it has at most one request with tiny_http.
    fn relay(&mut self, request: &[u8], req: &RequestHead) -> Result<bool, End> {
        // Either way the lease is gone by now: only the client is left.
        match self.fetch(request, req) {
            Fetched::Response(keep_alive) => {
                let written = self.client.write_all(&self.response);
                self.forget_response();
                written.map_err(End::Io)?;
                Ok(keep_alive)
            }
            Fetched::Failed(answer, end) => {
                let _ = self.client.write_all(&http::edge_response(answer));
                Err(end)
            }
        }
    }

    /// Gets the response to one request from tiny_http into `response`,
    /// retrying once per stale pooled connection. Touches only the hop.
    fn fetch(&mut self, request: &[u8], req: &RequestHead) -> Fetched {
        let pool = Arc::clone(&self.shared.backends);
        let head = http::forward_head(
            &request[..req.head_len],
            req.expect_continue,
            &self.identity,
        );
        let body = &request[req.head_len..];
        let deadline = Instant::now() + RESPONSE_TIMEOUT;
        // A pooled connection that tiny_http closed while it was idle is only
        // found out by using it: then the request is sent again on a new one.
        // It never reached tiny_http, so this cannot apply an update twice.
        loop {
            let lease = match pool.checkout(deadline) {
                Ok(lease) => lease,
                Err(e) => {
                    let answer = match e {
                        CheckoutError::Busy => EdgeAnswer::GatewayTimeout,
                        CheckoutError::Connect(_) | CheckoutError::Closed => EdgeAnswer::BadGateway,
                    };
                    if let CheckoutError::Connect(err) = &e {
                        log::error!(
                            "cannot reach the internal HTTP server at {}: {err}",
                            pool.hop().socket().display()
                        );
                    }
                    return Fetched::Failed(answer, End::Backend(e.to_string()));
                }
            };
            match self.exchange(lease, &head, body, req, deadline) {
                Attempt::Done(fetched) => return fetched,
                Attempt::Stale => continue,
            }
        }
    }

    /// One request over one pooled connection, its response read whole into
    /// `response` (at most `MAX_RESPONSE_BYTES`); the lease ends in here.
    ///
    /// Long on purpose: one loop that owns the hop socket, the response framer
    /// and the deadline, so that every way the internal hop can fail (reset,
    /// silent, malformed, oversized, closed early) is answered (502/504) in
    /// sight of the others.
    fn exchange(
        &mut self,
        mut lease: Lease,
        head: &[u8],
        body: &[u8],
        req: &RequestHead,
        deadline: Instant,
    ) -> Attempt {
        let failed =
            |answer, why: String| Attempt::Done(Fetched::Failed(answer, End::Backend(why)));
        let sent = lease
            .stream()
            .write_all(head)
            .and_then(|()| lease.stream().write_all(body));
        if let Err(e) = sent {
            if lease.reused {
                return Attempt::Stale;
            }
            return failed(EdgeAnswer::BadGateway, format!("sending the request: {e}"));
        }

        self.response.clear();
        let mut framer = ResponseFramer::new(req.is_head);
        loop {
            let fd = lease.stream().as_raw_fd();
            let now = Instant::now();
            let ready = match sys::wait_readable(fd, deadline.saturating_duration_since(now)) {
                Ok(ready) => now < deadline && ready,
                Err(e) => {
                    return Attempt::Done(Fetched::Failed(EdgeAnswer::BadGateway, End::Io(e)))
                }
            };
            if !ready {
                if Instant::now() < deadline {
                    continue;
                }
                return failed(EdgeAnswer::GatewayTimeout, "no response in time".into());
            }
            let n = match lease.stream().read(&mut self.scratch) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if lease.reused && framer.is_fresh() => {
                    log::debug!("pooled internal connection was reset: {e}; retrying");
                    return Attempt::Stale;
                }
                Err(e) => {
                    return failed(EdgeAnswer::BadGateway, format!("reading the response: {e}"))
                }
            };
            if n == 0 {
                if framer.until_close() {
                    // Complete; the connection is gone with the lease.
                    return Attempt::Done(Fetched::Response(false));
                }
                if lease.reused && framer.is_fresh() {
                    return Attempt::Stale;
                }
                return failed(
                    EdgeAnswer::BadGateway,
                    "closed before the response was complete".into(),
                );
            }
            let used = match framer.feed(&self.scratch[..n]) {
                Ok(used) => used,
                Err(e) => {
                    log::error!("the internal HTTP server sent an invalid response: {}", e.0);
                    return failed(EdgeAnswer::BadGateway, e.0.into());
                }
            };
            if self.response.len() + used > MAX_RESPONSE_BYTES {
                log::error!(
                    "the internal HTTP server sent a response over {MAX_RESPONSE_BYTES} bytes"
                );
                return failed(EdgeAnswer::BadGateway, "response too large".into());
            }
            self.response.extend_from_slice(&self.scratch[..used]);
            if framer.is_done() {
                // Bytes past the response would belong to no request: then the
                // connection is dropped (with the lease), not given back.
                if used == n && framer.backend_reusable() {
                    lease.give_back();
                }
                return Attempt::Done(Fetched::Response(framer.keep_alive() && !req.close));
            }
        }
    }

    /// Done with a relayed response: an unusually large one does not stay
    /// allocated for the rest of a keep-alive connection.
    fn forget_response(&mut self) {
        self.response.clear();
        self.response.shrink_to(READ_CHUNK);
    }
}

/// The client side: a plain socket or rustls over it. Every read waits in
/// `poll` under a deadline; writes are bounded by the socket's write timeout.
struct ClientIo {
    stream: Arc<ClientStream>,
    tls: Option<Box<ServerConnection>>,
}

impl ClientIo {
    /// Completes the TLS handshake by `deadline` (no-op for plain HTTP).
    ///
    /// RUSTSEC-2024-0336 was rustls's `complete_io` looping forever after a
    /// close_notify during the handshake. This loop never retries without new
    /// input: it blocks in `poll`, ends on EOF, on a TLS error, on the peer's
    /// close_notify once rustls honours it, and at `deadline`. (rustls 0.23
    /// takes a close_notify before the handshake is done as a TLS 1.2 warning
    /// alert and ignores it, so such a client is cut off by the deadline.)
    fn handshake(&mut self, deadline: Instant) -> Result<(), End> {
        let Some(tls) = self.tls.as_deref_mut() else {
            return Ok(());
        };
        while tls.is_handshaking() {
            flush_tls(&self.stream, tls)?;
            wait(&self.stream, deadline, "TLS handshake")?;
            match tls.read_tls(&mut &*self.stream) {
                Ok(0) => return Err(End::Closed),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(End::Io(e)),
            }
            let state = process(&self.stream, tls)?;
            if state.peer_has_closed() {
                return Err(End::Closed);
            }
        }
        flush_tls(&self.stream, tls)
    }

    /// Appends at most `room` bytes of request data to `buf`, waiting until
    /// `deadline`. Ok(n) with n > 0, or why there will be no more.
    fn read_into(
        &mut self,
        buf: &mut Vec<u8>,
        room: usize,
        deadline: Instant,
    ) -> Result<usize, End> {
        let chunk = room.clamp(1, READ_CHUNK);
        let start = buf.len();
        loop {
            if let Some(tls) = self.tls.as_deref_mut() {
                buf.resize(start + chunk, 0);
                let got = tls.reader().read(&mut buf[start..]);
                buf.truncate(start + *got.as_ref().unwrap_or(&0));
                match got {
                    // close_notify after all data.
                    Ok(0) => return Err(End::Closed),
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // TCP closed without close_notify.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(End::Closed),
                    Err(e) => return Err(End::Io(e)),
                }
                // Post-handshake messages (tickets, alerts) may be waiting to go out.
                flush_tls(&self.stream, tls)?;
            }
            wait(&self.stream, deadline, "read")?;
            match self.tls.as_deref_mut() {
                None => {
                    buf.resize(start + chunk, 0);
                    let got = (&*self.stream).read(&mut buf[start..]);
                    buf.truncate(start + *got.as_ref().unwrap_or(&0));
                    match got {
                        Ok(0) => return Err(End::Closed),
                        Ok(n) => return Ok(n),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(End::Io(e)),
                    }
                }
                Some(tls) => {
                    match tls.read_tls(&mut &*self.stream) {
                        Ok(0) => return Err(End::Closed),
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(End::Io(e)),
                    }
                    process(&self.stream, tls)?;
                }
            }
        }
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self.tls.as_deref_mut() {
            None => (&*self.stream).write_all(data),
            Some(tls) => {
                // In pieces, so rustls's outgoing buffer never has to grow past one record.
                for piece in data.chunks(READ_CHUNK) {
                    tls.writer().write_all(piece)?;
                    flush_tls(&self.stream, tls).map_err(|e| match e {
                        End::Io(e) => e,
                        other => io::Error::other(other.to_string()),
                    })?;
                }
                Ok(())
            }
        }
    }

    /// Ends the connection politely: close_notify for TLS, then a half-close
    /// and a short drain of unread input (a "lingering close"), so an answer
    /// just written reaches the client instead of being cut off by a RST.
    fn close(&mut self) {
        if let Some(tls) = self.tls.as_deref_mut() {
            tls.send_close_notify();
            let _ = flush_tls(&self.stream, tls);
        }
        if self.stream.shutdown(Shutdown::Write).is_err() {
            return;
        }
        let deadline = Instant::now() + LINGER;
        let mut drained = 0;
        let mut sink = [0u8; 4096];
        while drained < LINGER_BYTES && wait(&self.stream, deadline, "linger").is_ok() {
            match (&*self.stream).read(&mut sink) {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    }
}

/// Waits until the client socket is readable or `deadline` passes.
fn wait(stream: &ClientStream, deadline: Instant, what: &'static str) -> Result<(), End> {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(End::Timeout(what));
        }
        if sys::wait_readable(stream.as_raw_fd(), deadline - now).map_err(End::Io)? {
            return Ok(());
        }
    }
}

/// Writes out whatever rustls has queued (handshake flights, alerts, data).
fn flush_tls(stream: &ClientStream, tls: &mut ServerConnection) -> Result<(), End> {
    while tls.wants_write() {
        match tls.write_tls(&mut &*stream) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(End::Io(e)),
        }
    }
    Ok(())
}

/// Lets rustls process received records; on a TLS error its alert is sent
/// (best effort) before the connection ends.
fn process(stream: &ClientStream, tls: &mut ServerConnection) -> Result<rustls::IoState, End> {
    match tls.process_new_packets() {
        Ok(state) => Ok(state),
        Err(e) => {
            let _ = flush_tls(stream, tls);
            Err(End::Tls(e))
        }
    }
}
