//! The DNS UPDATE listeners (SPEC 14): UDP and TCP on each `[dns_update] listen`
//! address; every message goes to the worker pool and its answer back. Never stops on errors.
//!
//! Threading model: one thread per UDP socket (receive, submit, go on: the
//! worker sends the answer itself with `send_to`); one accept thread per TCP
//! socket, and one small thread per TCP connection that reads a message
//! (RFC 1035 4.2.2: two-octet length, then the message), submits it, waits for
//! its answer, writes it and only then reads the next. So a TCP client holds
//! at most its own connection and one job; a worker never writes to a client
//! socket that may block (the connection's thread does, with a timeout).
//!
//! Bounds, those of the HTTP edge (`[server]`, counted apart): at most
//! `max_connections` TCP connections (beyond, the one idle longest is closed to
//! make room; if none is idle the newcomer is closed), an idle timeout between
//! messages, a deadline for a whole message from its first octet, and a size
//! cap for a message on either transport. An accept or receive error is logged
//! (at most once a second), waited out and retried: only `stop` ends a loop.

use super::job::{DnsJob, Submit, Transport};
use super::stats::DnsStats;
use crate::os::sys;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Listen backlog of the TCP sockets (the edge's, for the same reason).
const BACKLOG: i32 = 1024;
/// A connection thread only frames bytes; the default 2 MiB stack is waste.
const CONN_STACK_BYTES: usize = 128 * 1024;
/// How often a UDP thread looks at the stop flag while no datagram arrives.
const POLL: Duration = Duration::from_millis(200);
const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_millis(100);
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(1);
/// RFC 1035's framing cannot carry more; UDP cannot either.
const MAX_DNS_MESSAGE: usize = 65_535;

/// The bounds, from `[server]` (see docs/configuration.md, `dns_update.listen`).
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    pub max_connections: usize,
    /// A connection idle this long between messages is closed.
    pub idle_timeout: Duration,
    /// A message must arrive whole this long after its first octet.
    pub message_timeout: Duration,
    /// Larger messages are dropped (TCP: and the connection closed).
    pub max_message_bytes: usize,
}

/// Every listener bound, nothing running yet: `serve` binds before it writes
/// anything (SPEC 17), and starts them once the workers run.
pub struct Bound {
    sockets: Vec<(SocketAddr, UdpSocket, TcpListener)>,
}

/// Why the DNS listeners could not be set up: an address that cannot be
/// bound (named, with the key), or a thread that cannot start.
#[derive(Debug)]
pub enum ListenError {
    Bind {
        addr: SocketAddr,
        transport: &'static str,
        error: io::Error,
    },
    Thread(io::Error),
}

impl std::fmt::Display for ListenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenError::Bind {
                addr,
                transport,
                error,
            } => write!(
                f,
                "cannot listen on {addr} ({transport}, dns_update.listen): {error}"
            ),
            ListenError::Thread(e) => write!(f, "cannot start a thread: {e}"),
        }
    }
}

impl std::error::Error for ListenError {}

/// Bind UDP and TCP on each address; the error names the address and the key.
pub fn bind(addrs: &[SocketAddr]) -> Result<Bound, ListenError> {
    let mut sockets = Vec::with_capacity(addrs.len());
    for &addr in addrs {
        let named = |transport: &'static str, error: io::Error| ListenError::Bind {
            addr,
            transport,
            error,
        };
        let udp = sys::bind_udp(addr).map_err(|e| named("UDP", e))?;
        // Port 0 (tests): TCP on the port UDP got.
        let actual = udp.local_addr().map_err(|e| named("UDP", e))?;
        let tcp = sys::listen_tcp(actual, BACKLOG).map_err(|e| named("TCP", e))?;
        sockets.push((actual, udp, tcp));
    }
    Ok(Bound { sockets })
}

impl Bound {
    /// The bound addresses (with the real port where 0 was asked for).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.sockets.iter().map(|(a, _, _)| *a).collect()
    }

    /// Start receiving: each message goes to `submit`, and is counted in `stats`.
    pub fn start(
        self,
        bounds: Bounds,
        submit: Arc<Submit>,
        stats: Arc<DnsStats>,
    ) -> Result<Listeners, ListenError> {
        let shared = Arc::new(Shared {
            bounds,
            submit,
            stats,
            stopping: AtomicBool::new(false),
            conns: Mutex::new(Registry::default()),
            closed: Condvar::new(),
        });
        let mut listeners = Listeners {
            shared: shared.clone(),
            threads: Vec::new(),
            tcp: Vec::new(),
        };
        for (addr, udp, tcp) in self.sockets {
            let tcp = Arc::new(tcp);
            listeners.tcp.push(tcp.clone());
            let (s, u) = (shared.clone(), Arc::new(udp));
            let spawned = thread::Builder::new()
                .name("dns-udp".into())
                .spawn(move || udp_loop(&s, &u));
            match spawned {
                Ok(t) => listeners.threads.push(t),
                Err(e) => return Err(listeners.abandon(ListenError::Thread(e))),
            }
            let s = shared.clone();
            let spawned = thread::Builder::new()
                .name("dns-accept".into())
                .spawn(move || accept_loop(&s, &tcp));
            match spawned {
                Ok(t) => listeners.threads.push(t),
                Err(e) => return Err(listeners.abandon(ListenError::Thread(e))),
            }
            log::info!("listening for DNS UPDATE on udp://{addr} and tcp://{addr}");
        }
        Ok(listeners)
    }
}

/// The running listeners; `stop` ends them.
pub struct Listeners {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    tcp: Vec<Arc<TcpListener>>,
}

impl Listeners {
    /// Stop receiving and accepting, close every TCP connection (a message
    /// being answered is answered first), and wait for the threads, the
    /// connections' at most `within`. Returns whether they all ended.
    pub fn stop(self, within: Duration) -> bool {
        self.shared.stopping.store(true, Ordering::SeqCst);
        for l in &self.tcp {
            sys::wake_acceptor(&**l);
        }
        for t in self.threads {
            let _ = t.join();
        }
        self.shared.close_idle_and_wait(within)
    }

    /// A start that failed half-way: stop what runs, return `why`.
    fn abandon(self, why: ListenError) -> ListenError {
        self.stop(Duration::from_secs(1));
        why
    }
}

struct Shared {
    bounds: Bounds,
    submit: Arc<Submit>,
    stats: Arc<DnsStats>,
    stopping: AtomicBool,
    conns: Mutex<Registry>,
    /// Signalled when a connection ends.
    closed: Condvar,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    open: HashMap<u64, Conn>,
}

struct Conn {
    /// The connection's socket, shared with its thread: shutting it down
    /// wakes that thread, which then ends.
    stream: Arc<TcpStream>,
    /// Since when it waits for the next message's first octet (`None`:
    /// reading or answering one; never evicted then).
    idle_since: Option<Instant>,
    evicted: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// A slot for a new connection, closing the one idle longest when all are
    /// taken; `None` (the newcomer is closed) when none is idle.
    fn admit(&self, stream: &Arc<TcpStream>) -> Option<u64> {
        let mut reg = self.lock();
        let live = reg.open.values().filter(|c| !c.evicted).count();
        if live >= self.bounds.max_connections {
            let victim = reg
                .open
                .iter_mut()
                .filter(|(_, c)| !c.evicted)
                .filter_map(|(_, c)| Some((c.idle_since?, c)))
                .min_by_key(|(since, _)| *since)
                .map(|(_, c)| c)?;
            victim.evicted = true;
            let _ = victim.stream.shutdown(Shutdown::Both);
            self.stats.tcp_evicted();
        }
        let id = reg.next_id;
        reg.next_id += 1;
        reg.open.insert(
            id,
            Conn {
                stream: stream.clone(),
                idle_since: Some(Instant::now()),
                evicted: false,
            },
        );
        self.stats.tcp_opened();
        Some(id)
    }

    fn set_idle(&self, id: u64, idle: bool) {
        if let Some(c) = self.lock().open.get_mut(&id) {
            c.idle_since = idle.then(Instant::now);
        }
    }

    fn release(&self, id: u64) {
        if self.lock().open.remove(&id).is_some() {
            self.stats.tcp_closed();
        }
        self.closed.notify_all();
    }

    /// After the stop flag: close the idle connections now and the busy ones
    /// once their answer is written (their threads look at the flag); wait.
    fn close_idle_and_wait(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut reg = self.lock();
        loop {
            for c in reg.open.values() {
                if c.idle_since.is_some() {
                    let _ = c.stream.shutdown(Shutdown::Both);
                }
            }
            if reg.open.is_empty() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                for c in reg.open.values() {
                    let _ = c.stream.shutdown(Shutdown::Both);
                }
                return false;
            }
            // Woken by each closing connection; the short wait also catches
            // one that went idle after the shutdowns above.
            let wait = (deadline - now).min(Duration::from_millis(50));
            reg = self
                .closed
                .wait_timeout(reg, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// Logs socket errors at most once a second and backs off between retries.
struct ErrorPacer {
    what: String,
    backoff: Duration,
    last_log: Option<Instant>,
    unlogged: u64,
}

impl ErrorPacer {
    fn new(what: String) -> ErrorPacer {
        ErrorPacer {
            what,
            backoff: MIN_BACKOFF,
            last_log: None,
            unlogged: 0,
        }
    }

    fn failed(&mut self, stats: &DnsStats, e: &io::Error) {
        stats.note_socket_error();
        self.unlogged += 1;
        let now = Instant::now();
        if self
            .last_log
            .is_none_or(|t| now.duration_since(t) >= ERROR_LOG_INTERVAL)
        {
            log::error!(
                "{} failed ({} time(s) since last report): {e}; retrying \
                 (out of file descriptors? see max_connections and LimitNOFILE)",
                self.what,
                self.unlogged
            );
            self.last_log = Some(now);
            self.unlogged = 0;
        }
        thread::sleep(self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    fn ok(&mut self) {
        self.backoff = MIN_BACKOFF;
    }
}

/// Receive datagrams until stopped; each goes to the workers with a reply
/// that sends the answer to its source.
fn udp_loop(shared: &Arc<Shared>, socket: &Arc<UdpSocket>) {
    let name = socket
        .local_addr()
        .map_or_else(|_| "?".into(), |a| a.to_string());
    if let Err(e) = socket.set_read_timeout(Some(POLL)) {
        log::error!("DNS UPDATE udp://{name}: cannot set a receive timeout: {e}");
    }
    let mut pacer = ErrorPacer::new(format!("receiving on udp://{name}"));
    // One octet more than allowed: a datagram that fills it was too large
    // (recv_from drops the rest silently).
    let max = shared.bounds.max_message_bytes.min(MAX_DNS_MESSAGE);
    let mut buf = vec![0u8; max + 1];
    while !shared.stopping() {
        let (n, source) = match socket.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e) => {
                match e.kind() {
                    io::ErrorKind::WouldBlock
                    | io::ErrorKind::TimedOut
                    | io::ErrorKind::Interrupted
                    // An ICMP error for an earlier answer: nothing of ours.
                    | io::ErrorKind::ConnectionRefused => {}
                    _ if shared.stopping() => return,
                    _ => pacer.failed(&shared.stats, &e),
                }
                continue;
            }
        };
        pacer.ok();
        if n > max {
            shared.stats.note_oversized(Transport::Udp);
            continue;
        }
        let (socket, stats) = (socket.clone(), shared.stats.clone());
        let job = DnsJob {
            message: buf[..n].to_vec(),
            source,
            transport: Transport::Udp,
            reply: Box::new(move |answer: Option<Vec<u8>>| {
                stats.note_answer(Transport::Udp, answer.as_deref());
                if let Some(a) = answer {
                    // Best effort, as UDP is: the client retries.
                    let _ = socket.send_to(&a, source);
                }
            }),
        };
        if !(shared.submit)(job) {
            shared.stats.note_queue_full(Transport::Udp);
        }
    }
}

/// Accept TCP connections until stopped, each on a thread of its own.
fn accept_loop(shared: &Arc<Shared>, listener: &TcpListener) {
    let name = listener
        .local_addr()
        .map_or_else(|_| "?".into(), |a| a.to_string());
    let mut pacer = ErrorPacer::new(format!("accepting on tcp://{name}"));
    loop {
        if shared.stopping() {
            return;
        }
        let (stream, peer) = match listener.accept() {
            Ok(pair) => pair,
            Err(e) => {
                if shared.stopping() {
                    return;
                }
                match e.kind() {
                    io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted => {}
                    _ => pacer.failed(&shared.stats, &e),
                }
                continue;
            }
        };
        pacer.ok();
        let _ = stream.set_nodelay(true);
        let stream = Arc::new(stream);
        let Some(id) = shared.admit(&stream) else {
            // Every connection is busy with a message: this one waits no turn.
            let _ = stream.shutdown(Shutdown::Both);
            continue;
        };
        let s = shared.clone();
        let spawned = thread::Builder::new()
            .name("dns-tcp".into())
            .stack_size(CONN_STACK_BYTES)
            .spawn(move || {
                serve_connection(&s, &stream, peer, id);
                s.release(id);
            });
        if let Err(e) = spawned {
            // The closure, with the stream, is gone: the client is closed.
            shared.release(id);
            pacer.failed(&shared.stats, &e);
        }
    }
}

/// Why a connection ends: its client left or broke the rules; nothing to log
/// per connection (each message has its own line from the intake).
enum End {
    Closed,
}

impl From<io::Error> for End {
    fn from(_: io::Error) -> End {
        End::Closed
    }
}

/// One TCP connection: message, answer, message, ... until the client closes,
/// idles too long, sends too slowly or too much, or the service stops.
fn serve_connection(shared: &Shared, stream: &TcpStream, peer: SocketAddr, id: u64) {
    let b = shared.bounds;
    let _ = stream.set_write_timeout(Some(b.idle_timeout));
    let mut buf = Vec::new();
    while !shared.stopping() {
        let message = match read_message(shared, stream, id, &mut buf) {
            Ok(Some(m)) => m,
            Ok(None) | Err(End::Closed) => return,
        };
        let (tx, rx) = mpsc::sync_channel::<Option<Vec<u8>>>(1);
        let stats = shared.stats.clone();
        let job = DnsJob {
            message,
            source: peer,
            transport: Transport::Tcp,
            reply: Box::new(move |answer: Option<Vec<u8>>| {
                stats.note_answer(Transport::Tcp, answer.as_deref());
                let _ = tx.send(answer);
            }),
        };
        if !(shared.submit)(job) {
            // The pool is saturated: the client retries on a new connection.
            shared.stats.note_queue_full(Transport::Tcp);
            return;
        }
        // The worker always replies, or drops the reply (a panic): then Err.
        let answer = match rx.recv() {
            Ok(Some(a)) => a,
            Ok(None) => continue,
            Err(_) => return,
        };
        let Ok(len) = u16::try_from(answer.len()) else {
            return;
        };
        let mut framed = Vec::with_capacity(answer.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&answer);
        if (&*stream).write_all(&framed).is_err() {
            return;
        }
    }
}

/// The next framed message (`None`: the client closed between messages).
fn read_message(
    shared: &Shared,
    stream: &TcpStream,
    id: u64,
    buf: &mut Vec<u8>,
) -> Result<Option<Vec<u8>>, End> {
    let b = shared.bounds;
    shared.set_idle(id, true);
    stream.set_read_timeout(Some(b.idle_timeout))?;
    let mut len = [0u8; 2];
    let first = loop {
        match (&*stream).read(&mut len[..1]) {
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
    };
    if first == 0 {
        return Ok(None);
    }
    shared.set_idle(id, false);
    let deadline = Instant::now() + b.message_timeout;
    read_by(stream, &mut len[1..], deadline)?;
    let n = usize::from(u16::from_be_bytes(len));
    if n == 0 {
        // Not a message: nothing to answer, nothing to count.
        return Err(End::Closed);
    }
    if n > b.max_message_bytes {
        shared.stats.note_oversized(Transport::Tcp);
        return Err(End::Closed);
    }
    buf.resize(n, 0);
    read_by(stream, buf, deadline)?;
    Ok(Some(buf.clone()))
}

/// Fill `buf` before `deadline` (a client that trickles octets is cut off).
fn read_by(stream: &TcpStream, buf: &mut [u8], deadline: Instant) -> Result<(), End> {
    let mut got = 0;
    while got < buf.len() {
        let left = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or(End::Closed)?;
        stream.set_read_timeout(Some(left))?;
        match (&*stream).read(&mut buf[got..]) {
            Ok(0) => return Err(End::Closed),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn bounds() -> Bounds {
        Bounds {
            max_connections: 2,
            idle_timeout: Duration::from_secs(2),
            message_timeout: Duration::from_secs(1),
            max_message_bytes: 512,
        }
    }

    /// A pool stand-in that answers every message with itself reversed, on
    /// a thread of its own as a worker would.
    fn echo() -> Arc<Submit> {
        Arc::new(|job: DnsJob| {
            thread::spawn(move || {
                let mut a = job.message;
                a.reverse();
                (job.reply)(Some(a));
            });
            true
        })
    }

    fn start(submit: Arc<Submit>) -> (Listeners, SocketAddr, Arc<DnsStats>) {
        let bound = bind(&["127.0.0.1:0".parse().unwrap()]).unwrap();
        let addr = bound.local_addrs()[0];
        let stats = Arc::new(DnsStats::default());
        let l = bound.start(bounds(), submit, stats.clone()).unwrap();
        (l, addr, stats)
    }

    fn frame(m: &[u8]) -> Vec<u8> {
        let mut f = (m.len() as u16).to_be_bytes().to_vec();
        f.extend_from_slice(m);
        f
    }

    fn read_frame(s: &mut TcpStream) -> io::Result<Vec<u8>> {
        let mut len = [0u8; 2];
        s.read_exact(&mut len)?;
        let mut m = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut m)?;
        Ok(m)
    }

    fn connect(addr: SocketAddr) -> TcpStream {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    #[test]
    fn udp_answers_go_back_to_the_source_and_oversized_ones_are_dropped() {
        let (l, addr, stats) = start(echo());
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.send_to(&vec![7u8; 513], addr).unwrap();
        c.send_to(b"abc", addr).unwrap();
        let mut buf = [0u8; 600];
        let (n, from) = c.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"cba"[..], addr));
        assert_eq!(load_oversized(&stats), 1);
        assert!(l.stop(Duration::from_secs(2)));
    }

    fn load_oversized(s: &DnsStats) -> u64 {
        s.render()
            .lines()
            .find_map(|l| l.strip_prefix("dedyn_update_dns_oversized_total{transport=\"udp\"} "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    #[test]
    fn tcp_carries_several_framed_messages_on_one_connection() {
        let (l, addr, _) = start(echo());
        let mut s = connect(addr);
        for m in [&b"first"[..], b"second", b"x"] {
            s.write_all(&frame(m)).unwrap();
            let mut want = m.to_vec();
            want.reverse();
            assert_eq!(read_frame(&mut s).unwrap(), want);
        }
        // Two messages in one write: answered in order.
        let mut two = frame(b"ab");
        two.extend(frame(b"cd"));
        s.write_all(&two).unwrap();
        assert_eq!(read_frame(&mut s).unwrap(), b"ba");
        assert_eq!(read_frame(&mut s).unwrap(), b"dc");
        assert!(l.stop(Duration::from_secs(2)));
    }

    #[test]
    fn tcp_message_over_the_size_bound_closes_the_connection() {
        let (l, addr, _) = start(echo());
        let mut s = connect(addr);
        s.write_all(&frame(&[1u8; 513])).unwrap();
        let mut rest = Vec::new();
        assert!(matches!(s.read_to_end(&mut rest), Ok(0) | Err(_)));
        assert!(l.stop(Duration::from_secs(2)));
    }

    #[test]
    fn a_trickling_client_is_cut_off_at_the_message_deadline() {
        let (l, addr, _) = start(echo());
        let mut s = connect(addr);
        let started = Instant::now();
        s.write_all(&[0, 10, 1]).unwrap(); // 10 octets announced, 1 sent
        let mut rest = Vec::new();
        assert!(matches!(s.read_to_end(&mut rest), Ok(0) | Err(_)));
        let took = started.elapsed();
        assert!(took < Duration::from_secs(4), "{took:?}");
        assert!(l.stop(Duration::from_secs(2)));
    }

    /// At the bound, the connection idle longest makes room for the new one.
    #[test]
    fn the_longest_idle_connection_makes_room() {
        let (l, addr, stats) = start(echo());
        let mut oldest = connect(addr);
        let poll_until = |what: &str, f: &dyn Fn() -> bool| {
            let deadline = Instant::now() + Duration::from_secs(5);
            while !f() {
                assert!(Instant::now() < deadline, "{what}");
                thread::sleep(Duration::from_millis(5));
            }
        };
        poll_until("first admitted", &|| {
            stats.render().contains("dns_tcp_connections 1")
        });
        let mut second = connect(addr);
        poll_until("second admitted", &|| {
            stats.render().contains("dns_tcp_connections 2")
        });
        let mut third = connect(addr);
        let mut rest = Vec::new();
        assert!(matches!(oldest.read_to_end(&mut rest), Ok(0) | Err(_)));
        for s in [&mut second, &mut third] {
            s.write_all(&frame(b"ok")).unwrap();
            assert_eq!(read_frame(s).unwrap(), b"ko");
        }
        assert!(stats.render().contains("dns_tcp_evictions_total 1"));
        assert!(l.stop(Duration::from_secs(2)));
    }

    /// A full queue drops the UDP message (counted) and closes a TCP connection.
    #[test]
    fn a_full_queue_drops_the_message() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let (l, addr, stats) = start(Arc::new(move |_job: DnsJob| {
            c.fetch_add(1, Ordering::SeqCst);
            false
        }));
        let mut s = connect(addr);
        s.write_all(&frame(b"hi")).unwrap();
        let mut rest = Vec::new();
        assert!(matches!(s.read_to_end(&mut rest), Ok(0) | Err(_)));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(stats
            .render()
            .contains("dedyn_update_dns_queue_full_total{transport=\"tcp\"} 1"));
        assert!(l.stop(Duration::from_secs(2)));
    }

    #[test]
    fn binding_an_address_in_use_names_it() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        // UDP may be free on that port: the TCP bind must fail then.
        let e = match bind(&[addr]) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("bound {addr} twice"),
        };
        assert!(
            e.contains(&addr.to_string()) && e.contains("dns_update.listen"),
            "{e}"
        );
    }

    #[test]
    fn stop_ends_idle_connections_and_the_loops() {
        let (l, addr, _) = start(echo());
        let mut s = connect(addr);
        s.write_all(&frame(b"hi")).unwrap();
        assert_eq!(read_frame(&mut s).unwrap(), b"ih");
        let started = Instant::now();
        assert!(l.stop(Duration::from_secs(2)));
        assert!(started.elapsed() < Duration::from_secs(2));
        let mut rest = Vec::new();
        assert!(matches!(s.read_to_end(&mut rest), Ok(0) | Err(_)));
    }
}
