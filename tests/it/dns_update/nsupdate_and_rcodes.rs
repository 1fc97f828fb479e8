//! SPEC 14 from the client's side: BIND's `nsupdate -k` with the key file that
//! `token add --tsig` prints, run as docs/dns-update.md shows it, sets and
//! deletes an address that NSD then serves; and every rcode of SPEC 14's order
//! of checks, each produced by a message built here with the crate's own DNS
//! code (where nsupdate cannot send it), each checking that nothing was written.

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use dedyn_update::dns::key::{Algorithm, Key};
use dedyn_update::dns::name::Name;
use dedyn_update::dns::tsig::{self, TsigError};
use dedyn_update::dns::wire::{
    Class, Header, Message, Opcode, Question, RData, RType, Rcode, Record,
};

use crate::common::dns::Rig;
use crate::common::ns::Kind;
use crate::common::proc::{find_tool, run_with_timeout, skip, TempDir};
use crate::common::readme::{cli_args, recipe};
use crate::common::server::{Server, Setup};

const OWNER: &str = "alice@example.org";
const NAME: &str = "alice.dedyn.example";
const ZONE: &str = "dedyn.example";
/// Bound on one nsupdate run (it retries UDP three times, 3 s apart).
const NSUPDATE: Duration = Duration::from_secs(60);
/// Publication through NSD normally takes well under a second.
const SERVED: Duration = Duration::from_secs(15);

fn dns_setup() -> Setup {
    Setup {
        dns_update: Some(Vec::new()),
        ..Setup::default()
    }
}

fn dns_addr(server: &Server) -> SocketAddr {
    server.dns.expect("a DNS UPDATE listener")
}

/// The docs' `token add --tsig` command, as written; its output (the key file
/// and the certbot and lego lines).
fn docs_tsig_token(server: &Server) -> String {
    server.cli_ok(&["user", "add", OWNER]);
    server.cli_ok(&["domain", "add", NAME, "--owner", OWNER]);
    let args = cli_args(&recipe("tsig-token"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert!(args.contains(&"--tsig"), "{args:?}");
    server.cli_ok(&args)
}

/// The key of a key file as `token add --tsig` prints it.
fn key_of(printed: &str) -> Key {
    let field = |prefix: &str| {
        printed
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in:\n{printed}"))
            .trim_end_matches(';')
            .trim_matches('"')
            .trim_end_matches('"')
            .to_string()
    };
    let name = field("key \"");
    let name = name.split('"').next().unwrap_or_default();
    let algorithm = Algorithm::from_str_name(&field("algorithm ")).expect("an algorithm");
    Key::from_base64(
        Name::from_text(name).expect("a key name"),
        algorithm,
        &field("secret \""),
    )
    .expect("a base64 secret")
}

/// A new token of alice's with a TSIG key, made with `args`.
fn tsig_key(server: &Server, args: &[&str]) -> Key {
    let mut all = vec!["token", "add", "--owner", OWNER, "--tsig"];
    all.extend_from_slice(args);
    key_of(&server.cli_ok(&all))
}

/// Run a docs block with `sh -eu` in `dir`, the placeholder server replaced.
fn run_block(block: &str, dns: SocketAddr, dir: &Path) -> (bool, String) {
    let block = block.replace(
        "dyn.example.org 5353",
        &format!("{} {}", dns.ip(), dns.port()),
    );
    assert!(!block.contains("dyn.example.org"), "{block}");
    let mut cmd = Command::new("sh");
    cmd.arg("-euc").arg(&block).current_dir(dir);
    let out = run_with_timeout(cmd, dir, NSUPDATE);
    (out.success(), out.text)
}

fn nsupdate_or_skip(test: &str) -> bool {
    if find_tool("nsupdate").is_none() {
        skip(
            test,
            "`nsupdate` is not installed (Debian package bind9-dnsutils; tests/install-deps.sh)",
        );
        return false;
    }
    true
}

/// The docs' `[dns_update]` block is a valid config with UDP and TCP on both families.
#[test]
fn the_docs_listen_block_is_a_config_that_listens_on_both_families() {
    let c = dedyn_update::config::settings::Config::parse(&recipe("dns-update-listen"), None)
        .expect("the docs' [dns_update] block parses");
    let listen: Vec<String> = c.dns_update.listen.iter().map(|a| a.to_string()).collect();
    assert_eq!(listen, ["0.0.0.0:5353", "[::]:5353"]);
}

/// The docs' recipes: add (NSD serves it), then delete (NSD serves nothing).
#[test]
fn nsupdate_with_the_printed_key_file_sets_and_deletes_an_address_nsd_serves() {
    const TEST: &str = "nsupdate_with_the_printed_key_file_sets_and_deletes_an_address_nsd_serves";
    if !nsupdate_or_skip(TEST) {
        return;
    }
    let rig = Rig::start(Kind::Nsd, dns_setup());
    let printed = docs_tsig_token(&rig.server);
    let dir = TempDir::new("nsupdate");
    std::fs::write(dir.path().join("alice.tsig"), &printed).unwrap();
    let dns = dns_addr(&rig.server);

    let started = Instant::now();
    let (ok, out) = run_block(&recipe("nsupdate-add"), dns, dir.path());
    assert!(ok, "nsupdate add failed:\n{out}\n{}", rig.server.log());
    rig.served(NAME, "A", &["192.0.2.1"], SERVED);
    let took = started.elapsed();
    eprintln!("\nTIMING: nsupdate add to NSD serving it: {took:.1?}");
    assert_eq!(rig.server.records(NAME), ["A 192.0.2.1"]);
    assert!(
        rig.server
            .log()
            .contains(&format!("udp key '{NAME}.' zone {ZONE}: NOERROR")),
        "{}",
        rig.server.log()
    );

    let (ok, out) = run_block(&recipe("nsupdate-delete"), dns, dir.path());
    assert!(ok, "nsupdate delete failed:\n{out}\n{}", rig.server.log());
    rig.served(NAME, "A", &[], SERVED);
    assert!(rig.server.records(NAME).is_empty());
}

/// nsupdate's `prereq nxdomain` on a name that holds an address: YXDOMAIN,
/// and the address it would have added is not written.
#[test]
fn nsupdate_prerequisite_that_fails_gets_yxdomain_and_writes_nothing() {
    const TEST: &str = "nsupdate_prerequisite_that_fails_gets_yxdomain_and_writes_nothing";
    if !nsupdate_or_skip(TEST) {
        return;
    }
    let server = Server::start_with(dns_setup());
    let printed = docs_tsig_token(&server);
    let dir = TempDir::new("nsupdate");
    std::fs::write(dir.path().join("alice.tsig"), &printed).unwrap();
    let dns = dns_addr(&server);
    let (ok, out) = run_block(&recipe("nsupdate-add"), dns, dir.path());
    assert!(ok, "{out}");
    let script = format!(
        "nsupdate -k alice.key <<'EOF'\nserver dyn.example.org 5353\nzone {ZONE}\n\
         prereq nxdomain {NAME}\nupdate add {NAME} 60 A 192.0.2.2\nsend\nEOF\n"
    );
    let (ok, out) = run_block(&script, dns, dir.path());
    assert!(!ok && out.contains("YXDOMAIN"), "{out}");
    assert_eq!(server.records(NAME), ["A 192.0.2.1"]);
}

/// A key file with the right name and another secret: NOTAUTH (BADSIG).
#[test]
fn nsupdate_with_a_wrong_key_gets_notauth_and_writes_nothing() {
    const TEST: &str = "nsupdate_with_a_wrong_key_gets_notauth_and_writes_nothing";
    if !nsupdate_or_skip(TEST) {
        return;
    }
    let server = Server::start_with(dns_setup());
    let printed = docs_tsig_token(&server);
    let key = key_of(&printed);
    let wrong = printed.replace(
        &key.secret_base64(),
        "d3Jvbmcgc2VjcmV0IG9mIDMyIGJ5dGVzIGxvbmchIQ==",
    );
    assert_ne!(wrong, printed);
    let dir = TempDir::new("nsupdate");
    std::fs::write(dir.path().join("alice.tsig"), &wrong).unwrap();
    let (ok, out) = run_block(&recipe("nsupdate-add"), dns_addr(&server), dir.path());
    assert!(!ok && out.contains("NOTAUTH"), "{out}");
    assert!(server.records(NAME).is_empty());
}

// ---- raw messages: every rcode of SPEC 14 ----

fn name(text: &str) -> Name {
    Name::from_text(text).expect("a name")
}

fn header(opcode: Opcode) -> Header {
    Header::request(0x2136, opcode)
}

fn rr(owner: &str, rtype: RType, class: Class, ttl: u32, rdata: RData) -> Record {
    Record {
        name: name(owner),
        rtype,
        class,
        ttl,
        rdata,
    }
}

/// Add an A record (RFC 2136 2.5.1).
fn add_a(owner: &str, a: &str) -> Record {
    rr(owner, RType::A, Class::In, 60, RData::A(a.parse().unwrap()))
}

/// An UPDATE for `zone` with these prerequisites and updates.
fn update(zone: &str, prereqs: Vec<Record>, updates: Vec<Record>) -> Message {
    Message {
        header: header(Opcode::Update),
        questions: vec![Question {
            name: name(zone),
            rtype: RType::Soa,
            class: Class::In,
        }],
        answers: prereqs,
        authorities: updates,
        additionals: Vec::new(),
        edns: None,
        tsig: None,
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `wire` over TCP (no per-source limit on failures there); the answer.
fn exchange_tcp(dns: SocketAddr, wire: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect_timeout(&dns, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut framed = (wire.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(wire);
    s.write_all(&framed).expect("send");
    let mut len = [0u8; 2];
    s.read_exact(&mut len).expect("an answer");
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut answer).expect("the whole answer");
    answer
}

fn exchange_udp(dns: SocketAddr, wire: &[u8]) -> Vec<u8> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.send_to(wire, dns).unwrap();
    let mut buf = vec![0u8; 65_535];
    let (n, _) = s.recv_from(&mut buf).expect("an answer over UDP");
    buf.truncate(n);
    buf
}

fn rcode_of(answer: &[u8]) -> Rcode {
    Message::parse(answer)
        .expect("a parsable answer")
        .header
        .rcode
}

/// Signed with `key` at `time`, sent over TCP: the rcode and the answer's TSIG
/// error as the client checks it (`Err`: unsigned or a wrong MAC).
fn signed(
    dns: SocketAddr,
    msg: &Message,
    key: &Key,
    time: u64,
) -> (Rcode, Result<Option<TsigError>, &'static str>) {
    let (wire, mac) = tsig::sign_request(msg.to_wire(), key, time);
    let answer = exchange_tcp(dns, &wire);
    (rcode_of(&answer), tsig::check_answer(&answer, key, &mac))
}

/// Every name's records, to compare before and after a refused message.
fn snapshot(server: &Server, names: &[&str]) -> Vec<Vec<String>> {
    names.iter().map(|n| server.records(n)).collect()
}

/// A server with alice (A 192.0.2.1 at NAME, a TSIG key for update and acme),
/// bob (bob.dedyn.example) and the zone static.example with `dynamic = false`.
struct Scene {
    server: Server,
    dns: SocketAddr,
    key: Key,
    names: [&'static str; 2],
}

impl Scene {
    fn start(setup: Setup) -> Scene {
        let mut setup = Setup {
            dns_update: Some(Vec::new()),
            ..setup
        };
        if setup.zones.is_none() {
            setup.zones = Setup::with_static_zone().zones;
        }
        let server = Server::start_with(setup);
        let dns = dns_addr(&server);
        server.cli_ok(&["user", "add", OWNER]);
        server.cli_ok(&["domain", "add", NAME, "--owner", OWNER]);
        let key = tsig_key(&server, &["--scope", "both"]);
        server.cli_ok(&["user", "add", "bob@example.org"]);
        server.cli_ok(&[
            "domain",
            "add",
            "bob.dedyn.example",
            "--owner",
            "bob@example.org",
        ]);
        let add = update(ZONE, vec![], vec![add_a(NAME, "192.0.2.1")]);
        let (rcode, tsig) = signed(dns, &add, &key, now());
        assert_eq!(
            (rcode, tsig),
            (Rcode::NoError, Ok(None)),
            "{}",
            server.log()
        );
        assert_eq!(server.records(NAME), ["A 192.0.2.1"]);
        Scene {
            server,
            dns,
            key,
            names: [NAME, "bob.dedyn.example"],
        }
    }

    /// A new HTTP token of the scene's owner.
    fn owner_token(&self) -> String {
        self.server
            .cli_ok(&["token", "add", "--owner", OWNER])
            .trim()
            .to_string()
    }

    /// An HTTP update of the scene's name to `ipv4` with `token`.
    fn http_update(&self, token: &str, ipv4: &str) -> crate::common::server::Response {
        self.server.get(
            &format!("/?hostname={NAME}&myipv4={ipv4}"),
            &[("Authorization", &crate::common::server::token(token))],
        )
    }

    /// `wire`, sent as it is over TCP, gets `rcode`, and nothing is written;
    /// the answer, for more checks.
    fn refused(&self, what: &str, wire: Vec<u8>, rcode: Rcode) -> Vec<u8> {
        let before = snapshot(&self.server, &self.names);
        let answer = exchange_tcp(self.dns, &wire);
        assert_eq!(rcode_of(&answer), rcode, "{what}\n{}", self.server.log());
        assert_eq!(
            snapshot(&self.server, &self.names),
            before,
            "{what}: something was written"
        );
        answer
    }

    /// `msg` signed with `key` at `time` gets `rcode`, with the TSIG error
    /// `error` in an answer the client can check (`None`: signed, no error),
    /// and nothing is written.
    fn signed_refused(
        &self,
        what: &str,
        msg: &Message,
        key: &Key,
        time: u64,
        rcode: Rcode,
        error: Option<TsigError>,
    ) {
        let before = snapshot(&self.server, &self.names);
        let (got, tsig) = signed(self.dns, msg, key, time);
        assert_eq!(
            (got, tsig),
            (rcode, Ok(error)),
            "{what}\n{}",
            self.server.log()
        );
        assert_eq!(
            snapshot(&self.server, &self.names),
            before,
            "{what}: something was written"
        );
    }
}

/// SPEC 14 steps 1 and 2: FORMERR, NOTIMP, REFUSED (unsigned), NOTAUTH with
/// BADKEY, BADSIG (answers with an empty MAC) and BADTIME (signed).
#[test]
fn unparsable_other_opcodes_unsigned_and_bad_keys_get_their_rcodes() {
    let s = Scene::start(Setup::default());
    // A header that promises a zone section the message does not hold.
    let mut truncated = update(ZONE, vec![], vec![]).to_wire();
    truncated.truncate(12);
    truncated[5] = 1;
    let a = s.refused("truncated", truncated, Rcode::FormErr);
    assert!(Message::parse(&a).unwrap().tsig.is_none());
    // NOTIFY (opcode 4): NOTIMP, unsigned.
    let notify = Message {
        header: header(Opcode::Other(4)),
        ..update(ZONE, vec![], vec![])
    };
    let (wire, _) = tsig::sign_request(notify.to_wire(), &s.key, now());
    let a = s.refused("NOTIFY", wire, Rcode::NotImp);
    assert!(
        Message::parse(&a).unwrap().tsig.is_none(),
        "NOTIMP is unsigned"
    );
    // Unsigned UPDATE: REFUSED, and no larger than the UPDATE.
    let add = update(ZONE, vec![], vec![add_a(NAME, "192.0.2.9")]);
    let wire = add.to_wire();
    let a = s.refused("unsigned", wire.clone(), Rcode::Refused);
    assert!(a.len() <= wire.len(), "{} > {}", a.len(), wire.len());

    let unknown = Key {
        name: name("nobody.example"),
        ..s.key.clone()
    };
    s.signed_refused(
        "unknown key",
        &add,
        &unknown,
        now(),
        Rcode::NotAuth,
        Some(TsigError::BadKey),
    );
    let wrong = Key {
        secret: b"another secret entirely, 32 oct".to_vec(),
        ..s.key.clone()
    };
    s.signed_refused(
        "wrong secret",
        &add,
        &wrong,
        now(),
        Rcode::NotAuth,
        Some(TsigError::BadSig),
    );
    s.signed_refused(
        "signed 1000 s ago",
        &add,
        &s.key,
        now() - 1000,
        Rcode::NotAuth,
        Some(TsigError::BadTime),
    );
}

/// SPEC 14 steps 3 to 5: not our zone (NOTAUTH), the four failed
/// prerequisites, a name outside the zone (NOTZONE) — each signed answer
/// carries no TSIG error, and the address the message would add is not written.
#[test]
fn zone_prerequisites_and_names_outside_the_zone_get_their_rcodes() {
    let s = Scene::start(Setup::default());
    let add = add_a(NAME, "192.0.2.9");
    let cases = [
        (
            "zone of another server",
            update(
                "example.net",
                vec![],
                vec![add_a("x.example.net", "192.0.2.9")],
            ),
            Rcode::NotAuth,
        ),
        (
            "name is in use (2.4.4), on a name without records",
            update(
                ZONE,
                vec![rr(
                    "carol.dedyn.example",
                    RType::Any,
                    Class::Any,
                    0,
                    RData::Empty,
                )],
                vec![add.clone()],
            ),
            Rcode::NxDomain,
        ),
        (
            "name is not in use (2.4.5), on a name with an address",
            update(
                ZONE,
                vec![rr(NAME, RType::Any, Class::None, 0, RData::Empty)],
                vec![add.clone()],
            ),
            Rcode::YxDomain,
        ),
        (
            "RRset exists (2.4.1), AAAA on a name without",
            update(
                ZONE,
                vec![rr(NAME, RType::Aaaa, Class::Any, 0, RData::Empty)],
                vec![add.clone()],
            ),
            Rcode::NxRrset,
        ),
        (
            "RRset exists with this value (2.4.2), another address",
            update(
                ZONE,
                vec![rr(
                    NAME,
                    RType::A,
                    Class::In,
                    0,
                    RData::A("192.0.2.77".parse().unwrap()),
                )],
                vec![add.clone()],
            ),
            Rcode::NxRrset,
        ),
        (
            "RRset does not exist (2.4.3), A on a name with one",
            update(
                ZONE,
                vec![rr(NAME, RType::A, Class::None, 0, RData::Empty)],
                vec![add.clone()],
            ),
            Rcode::YxRrset,
        ),
        (
            "a name outside the zone",
            update(
                ZONE,
                vec![],
                vec![add.clone(), add_a("alice.example.net", "192.0.2.9")],
            ),
            Rcode::NotZone,
        ),
    ];
    for (what, msg, rcode) in cases {
        s.signed_refused(what, &msg, &s.key, now(), rcode, None);
    }
}

/// SPEC 14 step 6: what the HTTP API would refuse is REFUSED here, signed.
#[test]
fn what_the_key_may_not_change_is_refused() {
    let s = Scene::start(Setup::default());
    let v4_only = tsig_key(&s.server, &["--family", "v4"]);
    let acme_only = tsig_key(&s.server, &["--scope", "acme"]);
    let update_only = tsig_key(&s.server, &["--scope", "update"]);
    let mx = rr(
        NAME,
        RType::Other(15),
        Class::In,
        60,
        RData::Opaque(b"\x00\x0a\x00".to_vec()),
    );
    let aaaa = rr(
        NAME,
        RType::Aaaa,
        Class::In,
        60,
        RData::Aaaa("2001:db8::1".parse().unwrap()),
    );
    let txt = |owner: &str| {
        rr(
            owner,
            RType::Txt,
            Class::In,
            60,
            RData::Txt(vec![b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG".to_vec()]),
        )
    };
    let cases: [(&str, Message, &Key); 8] = [
        ("another type (MX)", update(ZONE, vec![], vec![mx]), &s.key),
        (
            "TXT outside _acme-challenge",
            update(ZONE, vec![], vec![txt(NAME)]),
            &s.key,
        ),
        (
            "a name another user holds",
            update(ZONE, vec![], vec![add_a("bob.dedyn.example", "192.0.2.9")]),
            &s.key,
        ),
        (
            "a name nobody holds",
            update(
                ZONE,
                vec![],
                vec![add_a("carol.dedyn.example", "192.0.2.9")],
            ),
            &s.key,
        ),
        (
            "AAAA with a --family v4 key",
            update(ZONE, vec![], vec![aaaa]),
            &v4_only,
        ),
        (
            "an address with a --scope acme key",
            update(ZONE, vec![], vec![add_a(NAME, "192.0.2.9")]),
            &acme_only,
        ),
        (
            "a challenge value with a --scope update key",
            update(ZONE, vec![], vec![txt(&format!("_acme-challenge.{NAME}"))]),
            &update_only,
        ),
        (
            "a zone with dynamic = false",
            update(
                "static.example",
                vec![],
                vec![add_a("alice.static.example", "192.0.2.9")],
            ),
            &s.key,
        ),
    ];
    for (what, msg, key) in cases {
        s.signed_refused(what, &msg, key, now(), Rcode::Refused, None);
    }
}

/// SPEC 14 step 6: `dyndns_per_domain` counts DNS UPDATEs with the HTTP API's
/// updates; over it REFUSED, nothing written.
#[test]
fn an_update_over_the_rate_limit_is_refused() {
    let s = Scene::start(Setup {
        rate_limit: vec![
            "dyndns_per_domain = \"2/60s\"".into(),
            "failed_auth_per_ip = \"\"".into(),
            "acme_per_domain = \"\"".into(),
        ],
        ..Setup::default()
    });
    // The scene's own update was the first; an HTTP update the second.
    let token = s.owner_token();
    let r = s.http_update(&token, "192.0.2.2");
    assert_eq!(r.status, 200, "{r:?}");
    let add = update(ZONE, vec![], vec![add_a(NAME, "192.0.2.9")]);
    s.signed_refused(
        "third update in 60 s",
        &add,
        &s.key,
        now(),
        Rcode::Refused,
        None,
    );
    assert_eq!(s.server.records(NAME), ["A 192.0.2.2"]);
}

/// UDP carries the same: a signed update and an SOA query for the apex.
#[test]
fn udp_answers_signed_updates_and_the_apex_soa() {
    let s = Scene::start(Setup::default());
    let add = update(ZONE, vec![], vec![add_a(NAME, "192.0.2.3")]);
    let (wire, mac) = tsig::sign_request(add.to_wire(), &s.key, now());
    let answer = exchange_udp(s.dns, &wire);
    assert_eq!(rcode_of(&answer), Rcode::NoError, "{}", s.server.log());
    assert_eq!(tsig::check_answer(&answer, &s.key, &mac), Ok(None));
    assert_eq!(s.server.records(NAME), ["A 192.0.2.1", "A 192.0.2.3"]);
    let query = Message {
        header: header(Opcode::Query),
        ..update(ZONE, vec![], vec![])
    };
    let answer = Message::parse(&exchange_udp(s.dns, &query.to_wire())).unwrap();
    assert_eq!(answer.header.rcode, Rcode::NoError);
    assert!(answer.header.authoritative);
    assert!(
        matches!(answer.answers.as_slice(), [r] if r.rtype == RType::Soa),
        "{answer:?}"
    );
}

/// Metrics count the messages by transport and rcode.
#[test]
fn metrics_count_dns_messages_by_transport_and_rcode() {
    let metrics = crate::common::server::free_tcp("127.0.0.1").unwrap();
    let s = Scene::start(Setup {
        server: vec![format!("metrics_listen = \"{metrics}\"")],
        ..Setup::default()
    });
    let add = update(ZONE, vec![], vec![add_a(NAME, "192.0.2.9")]);
    s.refused("unsigned", add.to_wire(), Rcode::Refused);
    let text = crate::common::server::scrape(metrics);
    for (sample, at_least) in [
        (
            "dedyn_update_dns_messages_total{transport=\"tcp\",rcode=\"NOERROR\"}",
            1.0,
        ),
        (
            "dedyn_update_dns_messages_total{transport=\"tcp\",rcode=\"REFUSED\"}",
            1.0,
        ),
    ] {
        let v = crate::common::server::metric(&text, sample).unwrap_or(0.0);
        assert!(v >= at_least, "{sample} = {v}:\n{text}");
    }
}

/// SIGTERM with an idle TCP connection open: the listeners stop, the
/// connection is closed, the process exits 0.
#[test]
fn sigterm_closes_dns_connections_and_exits_cleanly() {
    use std::io::Read;
    let mut server = Server::start_with(dns_setup());
    let mut idle = TcpStream::connect(dns_addr(&server)).expect("connect");
    idle.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    assert_eq!(server.stop(), Some(0), "{}", server.log());
    let mut rest = Vec::new();
    assert!(matches!(idle.read_to_end(&mut rest), Ok(0) | Err(_)));
}

/// SPEC 17: a DNS UPDATE address that cannot be bound (UDP taken) fails the
/// start before anything is written, naming the address and the key; `check`
/// names it too.
#[test]
fn a_dns_listener_that_cannot_bind_fails_the_start_and_check() {
    let mut server = Server::start_with(dns_setup());
    let dns = dns_addr(&server);
    assert_eq!(server.stop(), Some(0));
    std::fs::remove_file(server.zone_file()).expect("the first start published the zone");
    let _taken = UdpSocket::bind(dns).expect("the port is free again");
    let out = server.cli(&["serve"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("cannot listen on {dns} (UDP, dns_update.listen)")),
        "{}",
        out.stderr
    );
    assert!(
        !server.zone_file().exists(),
        "a failed start wrote the zone"
    );
    let out = server.cli(&["check"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("dns_update.listen: cannot listen on {dns}")),
        "{}",
        out.stderr
    );
}

/// RFC 1035 4.2.2 on the real path: one TCP connection carries several
/// signed UPDATEs, each answered (and signed) before the next is read.
#[test]
fn one_tcp_connection_carries_several_updates() {
    use std::io::{Read, Write};
    let s = Scene::start(Setup::default());
    let mut conn = TcpStream::connect_timeout(&s.dns, Duration::from_secs(5)).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    for (i, addr) in ["192.0.2.11", "192.0.2.12", "192.0.2.13"]
        .iter()
        .enumerate()
    {
        let replace = update(
            ZONE,
            vec![],
            vec![
                rr(NAME, RType::A, Class::Any, 0, RData::Empty),
                add_a(NAME, addr),
            ],
        );
        let (wire, mac) = tsig::sign_request(replace.to_wire(), &s.key, now());
        let mut framed = (wire.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&wire);
        conn.write_all(&framed).expect("send");
        let mut len = [0u8; 2];
        conn.read_exact(&mut len).expect("an answer");
        let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
        conn.read_exact(&mut answer).expect("the whole answer");
        assert_eq!(rcode_of(&answer), Rcode::NoError, "message {i}");
        assert_eq!(tsig::check_answer(&answer, &s.key, &mac), Ok(None));
        assert_eq!(s.server.records(NAME), [format!("A {addr}")]);
    }
}

/// One worker, kept busy by a stream of DNS messages that never lets the DNS
/// queue empty: HTTP updates still get their turn (a worker takes one waiting
/// HTTP request after each DNS message), each answered while the stream goes on.
#[test]
fn http_updates_are_answered_while_dns_messages_keep_the_workers_busy() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let metrics = crate::common::server::free_tcp("127.0.0.1").unwrap();
    let s = Scene::start(Setup {
        server: vec![
            "workers = 1".into(),
            format!("metrics_listen = \"{metrics}\""),
        ],
        ..Setup::default()
    });
    let token = s.owner_token();
    // Unsigned UPDATEs: each is answered REFUSED by a worker, never written.
    let unsigned = update(ZONE, vec![], vec![add_a(NAME, "192.0.2.66")]).to_wire();
    let (done, sent) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let flood_for = Duration::from_secs(60);
    let senders: Vec<_> = (0..2)
        .map(|_| {
            let (done, sent, wire, dns) = (done.clone(), sent.clone(), unsigned.clone(), s.dns);
            std::thread::spawn(move || {
                let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
                let until = Instant::now() + flood_for;
                while !done.load(Ordering::SeqCst) && Instant::now() < until {
                    for _ in 0..64 {
                        if sock.send_to(&wire, dns).is_ok() {
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Instant::now() < until
            })
        })
        .collect();
    // The queue is full well before the first HTTP update.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sent.load(Ordering::Relaxed) < 20_000 {
        assert!(Instant::now() < deadline, "the senders did not get going");
        std::thread::yield_now();
    }
    for i in 10..20 {
        let r = s.http_update(&token, &format!("192.0.2.{i}"));
        assert_eq!(r.status, 200, "update {i} during the stream: {r:?}");
    }
    done.store(true, Ordering::SeqCst);
    for t in senders {
        assert!(
            t.join().expect("sender"),
            "the stream ran out before the HTTP updates were answered"
        );
    }
    assert_eq!(s.server.records(NAME), ["A 192.0.2.19"]);
    let text = crate::common::server::scrape(metrics);
    // Every message a worker took, answered (REFUSED) or left unanswered
    // (NONE: no answers to unsigned floods).
    let taken: f64 = ["REFUSED", "NONE"]
        .iter()
        .filter_map(|rcode| {
            let sample =
                format!("dedyn_update_dns_messages_total{{transport=\"udp\",rcode=\"{rcode}\"}}");
            crate::common::server::metric(&text, &sample)
        })
        .sum();
    assert!(
        taken > 1000.0,
        "the worker took {taken} DNS messages:\n{text}"
    );
}
