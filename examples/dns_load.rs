//! DNS UPDATE load generator (bench/run.sh, S5): signed UPDATEs, each setting a
//! new IPv4 address for a random name (delete the A RRset, add one address: a
//! write each), from `--clients` threads with one message outstanding each,
//! over UDP or over TCP with one connection per client reused. Built on the
//! crate's own DNS code (`dns::wire`, `dns::tsig::sign_request`), as a client
//! would sign. Prints `RESULT requests=… rps=… p99_ms=… p50_ms=… errors=… lost=…`.
//!
//! Talks to the given address only (bench/run.sh: 127.0.0.1); bounded in time.

use dedyn_update::dns::key::{Algorithm, Key};
use dedyn_update::dns::name::Name;
use dedyn_update::dns::tsig;
use dedyn_update::dns::wire::{
    Class, Header, Message, Opcode, Question, RData, RType, Rcode, Record,
};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A message not answered within this is counted as lost (UDP) and not retried.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

struct Args {
    server: SocketAddr,
    tcp: bool,
    key: Key,
    names: Vec<Name>,
    zone: Name,
    seconds: f64,
    clients: usize,
}

fn usage() -> ! {
    eprintln!(
        "usage: dns_load --server ADDR:PORT --transport udp|tcp --key KEYFILE --names FILE \
         --zone ZONE [--seconds S] [--clients N]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = std::env::args().skip(1);
    let (mut server, mut tcp, mut key, mut names, mut zone) = (None, false, None, None, None);
    let (mut seconds, mut clients) = (5.0, 16);
    while let Some(flag) = a.next() {
        let v = a.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--server" => server = v.parse().ok(),
            "--transport" => tcp = v == "tcp",
            "--key" => key = Some(read_key(&v)),
            "--names" => names = Some(read_names(&v)),
            "--zone" => zone = Name::from_text(&v).ok(),
            "--seconds" => seconds = v.parse().unwrap_or_else(|_| usage()),
            "--clients" => clients = v.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    match (server, key, names, zone) {
        (Some(server), Some(key), Some(names), Some(zone)) if !names.is_empty() => Args {
            server,
            tcp,
            key,
            names,
            zone,
            seconds,
            clients: clients.max(1),
        },
        _ => usage(),
    }
}

/// The key from the text `token add --tsig` prints (BIND's key-file lines).
fn read_key(path: &str) -> Key {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let field = |prefix: &str| -> String {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .unwrap_or_else(|| panic!("{path}: no {prefix:?}"))
            .trim_end_matches(';')
            .trim_matches('"')
            .split('"')
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let name = Name::from_text(&field("key \"")).expect("a key name");
    let algorithm = Algorithm::from_str_name(&field("algorithm ")).expect("an algorithm");
    Key::from_base64(name, algorithm, &field("secret \"")).expect("a base64 secret")
}

fn read_names(path: &str) -> Vec<Name> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Name::from_text(l.trim()).expect("a name"))
        .collect()
}

/// xorshift64*: enough to spread names and addresses, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// RFC 2136: delete NAME's A RRset, add one new address (zone section: ZONE SOA).
fn update(id: u16, zone: &Name, name: &Name, addr: Ipv4Addr) -> Message {
    let rr = |class, ttl, rdata| Record {
        name: name.clone(),
        rtype: RType::A,
        class,
        ttl,
        rdata,
    };
    Message {
        header: Header::request(id, Opcode::Update),
        questions: vec![Question {
            name: zone.clone(),
            rtype: RType::Soa,
            class: Class::In,
        }],
        answers: Vec::new(),
        authorities: vec![
            rr(Class::Any, 0, RData::Empty),
            rr(Class::In, 60, RData::A(addr)),
        ],
        additionals: Vec::new(),
        edns: None,
        tsig: None,
    }
}

enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
}

impl Conn {
    fn open(a: &Args) -> std::io::Result<Conn> {
        if a.tcp {
            let s = TcpStream::connect_timeout(&a.server, ANSWER_TIMEOUT)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(ANSWER_TIMEOUT))?;
            Ok(Conn::Tcp(s))
        } else {
            let bind = if a.server.is_ipv4() {
                "127.0.0.1:0"
            } else {
                "[::1]:0"
            };
            let s = UdpSocket::bind(bind)?;
            s.connect(a.server)?;
            s.set_read_timeout(Some(ANSWER_TIMEOUT))?;
            Ok(Conn::Udp(s))
        }
    }

    /// Send `wire`, wait for the answer with the same id.
    fn exchange(&mut self, wire: &[u8], buf: &mut Vec<u8>) -> std::io::Result<usize> {
        let id = [wire[0], wire[1]];
        match self {
            Conn::Udp(s) => {
                s.send(wire)?;
                buf.resize(65_535, 0);
                loop {
                    let n = s.recv(buf)?;
                    if n >= 2 && buf[..2] == id {
                        return Ok(n);
                    }
                }
            }
            Conn::Tcp(s) => {
                let mut framed = (wire.len() as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(wire);
                s.write_all(&framed)?;
                let mut len = [0u8; 2];
                s.read_exact(&mut len)?;
                let n = usize::from(u16::from_be_bytes(len));
                buf.resize(n, 0);
                s.read_exact(&mut buf[..n])?;
                Ok(n)
            }
        }
    }
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
    lost: u64,
    first_error: Option<String>,
}

fn client(a: &Args, seed: u64, until: Instant) -> Tally {
    let mut t = Tally::default();
    let mut rng = Rng(seed | 1);
    let mut conn = match Conn::open(a) {
        Ok(c) => c,
        Err(e) => {
            t.errors += 1;
            t.first_error = Some(format!("connect: {e}"));
            return t;
        }
    };
    let mut buf = Vec::new();
    while Instant::now() < until {
        let r = rng.next();
        let name = &a.names[(r % a.names.len() as u64) as usize];
        // 10.0.0.0/8: a new address almost every time.
        let addr = Ipv4Addr::from(0x0a00_0000 | (r >> 40) as u32 & 0x00ff_ffff);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let msg = update((r >> 16) as u16, &a.zone, name, addr);
        let (wire, _mac) = tsig::sign_request(msg.to_wire(), &a.key, now);
        let started = Instant::now();
        match conn.exchange(&wire, &mut buf) {
            Ok(n) => {
                let took = started.elapsed();
                match Header::parse(&buf[..n]).map(|h| h.rcode) {
                    Some(Rcode::NoError) => t
                        .latencies_us
                        .push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX)),
                    other => {
                        t.errors += 1;
                        t.first_error.get_or_insert(format!("answer {other:?}"));
                    }
                }
            }
            Err(e) => {
                t.lost += 1;
                t.first_error.get_or_insert(format!("{e}"));
                if a.tcp {
                    match Conn::open(a) {
                        Ok(c) => conn = c,
                        Err(_) => return t,
                    }
                }
            }
        }
    }
    t
}

fn main() {
    let a = parse_args();
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(a.seconds);
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let tallies: Vec<Tally> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..a.clients)
            .map(|i| {
                let a = &a;
                s.spawn(move || client(a, seed.wrapping_add(i as u64 * 0x9E37_79B9), until))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut all: Vec<u32> = tallies
        .iter()
        .flat_map(|t| t.latencies_us.iter().copied())
        .collect();
    all.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.is_empty() {
            return f64::NAN;
        }
        let i = ((all.len() as f64 * p).ceil() as usize).clamp(1, all.len()) - 1;
        f64::from(all[i]) / 1000.0
    };
    let errors: u64 = tallies.iter().map(|t| t.errors).sum();
    let lost: u64 = tallies.iter().map(|t| t.lost).sum();
    if let Some(e) = tallies.iter().find_map(|t| t.first_error.as_deref()) {
        eprintln!("dns_load: first error: {e}");
    }
    println!(
        "RESULT requests={} rps={:.1} p50_ms={:.2} p99_ms={:.2} errors={errors} lost={lost}",
        all.len(),
        all.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99),
    );
}
