//! The parser under random and mutated input (issue 21): a bounded property
//! test, deterministic so a failure is reproducible from its iteration number.

use super::captured::{self, bytes};
use super::key::{Algorithm, Key};
use super::name::{Name, MAX_WIRE_LEN};
use super::tsig::{check_request, sign_answer, Checked};
use super::wire::{Message, RData, Rcode, MIN_QUESTION_LEN, MIN_RECORD_LEN};

/// xorshift64*: tiny, deterministic, good enough to mutate bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// Octets the parse result holds, counted generously: every name at its full
/// wire length, every RDATA, every vector's element. The bound checked: the
/// records fit the message (each costs ≥ 11 octets) and what they hold is at
/// most a fixed multiple of it (a 2-octet pointer may stand for a 255-octet name).
fn held(m: &Message) -> (usize, usize) {
    let names = |n: &Name| n.as_wire().len();
    let rdata = |r: &RData| match r {
        RData::Empty | RData::A(_) | RData::Aaaa(_) => 16,
        RData::Txt(s) => s.iter().map(|s| s.len() + 24).sum(),
        RData::Ns(n) => names(n),
        RData::Soa(s) => names(&s.mname) + names(&s.rname) + 20,
        RData::Opaque(b) => b.len(),
    };
    let records = m.answers.len() + m.authorities.len() + m.additionals.len();
    let bytes = m.questions.iter().map(|q| names(&q.name)).sum::<usize>()
        + m.answers
            .iter()
            .chain(&m.authorities)
            .chain(&m.additionals)
            .map(|r| names(&r.name) + rdata(&r.rdata))
            .sum::<usize>()
        + m.edns.as_ref().map_or(0, |e| e.options.len())
        + m.tsig
            .as_ref()
            .map_or(0, |t| t.rdata.len() + names(&t.name));
    (
        m.questions.len() * MIN_QUESTION_LEN + records * MIN_RECORD_LEN,
        bytes,
    )
}

/// Parse, and if it parses, check the bound and run TSIG and the answer path
/// over it as the intake will: none of it may panic.
fn exercise(wire: &[u8], keys: &[Key]) -> bool {
    let Ok(m) = Message::parse(wire) else {
        return false;
    };
    let (min_len, bytes) = held(&m);
    assert!(min_len + 12 <= wire.len(), "more records than octets");
    assert!(
        bytes <= wire.len() / 2 * MAX_WIRE_LEN + wire.len(),
        "parse holds {bytes} octets for a {}-octet message",
        wire.len()
    );
    for k in keys {
        let lookup = |n: &Name| (*n == k.name).then(|| k.clone());
        if let Ok(checked) = check_request(wire, &m, 0x6b16bddd, lookup) {
            let rcode = match checked {
                Checked::Failed { .. } => Rcode::NotAuth,
                _ => Rcode::NoError,
            };
            let answer = sign_answer(Message::answer_to(&m, rcode).to_wire(), &checked, 1);
            assert!(Message::parse(&answer).is_ok(), "our own answer must parse");
        }
    }
    true
}

fn keys() -> Vec<Key> {
    vec![
        Key {
            name: Name::from_text("test-key").unwrap(),
            algorithm: Algorithm::HmacSha256,
            secret: captured::SECRET_256.to_vec(),
        },
        Key {
            name: Name::from_text("test-key512").unwrap(),
            algorithm: Algorithm::HmacSha512,
            secret: captured::SECRET_512.to_vec(),
        },
    ]
}

/// One mutation of a real message: flip, set, insert, delete, truncate, or
/// splice a compression pointer (the parser's hardest path).
fn mutate(rng: &mut Rng, wire: &mut Vec<u8>) {
    let at = rng.below(wire.len());
    match rng.below(7) {
        0 => wire[at] ^= 1 << rng.below(8),
        1 => wire[at] = rng.byte(),
        2 => wire.insert(at, rng.byte()),
        3 => {
            wire.remove(at);
        }
        4 => wire.truncate(at),
        5 => {
            let target = rng.below(wire.len());
            wire.splice(at..at, [0xC0 | (target >> 8) as u8 & 0x3F, target as u8]);
        }
        _ => {
            // A header count set anywhere from 0 to 65535.
            let field = 4 + 2 * rng.below(4);
            let v = rng.byte();
            wire[field] = v;
        }
    }
}

/// Bounded: about a second in a debug build on a small machine. For a longer
/// hunt: `DEDYN_FUZZ_SCALE=100 cargo test --release --lib dns::fuzz`.
const MUTATED: usize = 100_000;
const RANDOM: usize = 50_000;

fn scaled(n: usize) -> usize {
    let scale = std::env::var("DEDYN_FUZZ_SCALE").ok();
    n * scale.and_then(|s| s.parse().ok()).unwrap_or(1usize)
}

#[test]
fn mutated_real_messages_never_panic() {
    let keys = keys();
    let mut rng = Rng(0x0DED_1A2B_C0FF_EE21);
    let seeds: Vec<Vec<u8>> = captured::ALL.iter().map(|(h, _, _)| bytes(h)).collect();
    let mut parsed = 0;
    let rounds = scaled(MUTATED);
    for i in 0..rounds {
        let mut wire = seeds[i % seeds.len()].clone();
        for _ in 0..=rng.below(4) {
            if wire.len() > 12 {
                mutate(&mut rng, &mut wire);
            }
        }
        parsed += usize::from(exercise(&wire, &keys));
    }
    // The mutations must not all be rejected at once, or the deep paths go untried.
    eprintln!("{parsed} of {rounds} mutated messages parsed");
    assert!(
        parsed > rounds / 20,
        "only {parsed} mutated messages parsed"
    );
}

#[test]
fn random_messages_never_panic() {
    let keys = keys();
    let mut rng = Rng(0x5EED_0000_0000_0021);
    for _ in 0..scaled(RANDOM) {
        let len = rng.below(600);
        let mut wire: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
        // Small counts, so the sections are reached more often than the header.
        if wire.len() >= 12 {
            for (f, b) in wire[4..12].iter_mut().enumerate() {
                *b = if f % 2 == 0 { 0 } else { rng.byte() % 4 };
            }
        }
        exercise(&wire, &keys);
    }
}

/// The worst case for the bound: every record a 2-octet pointer to a
/// 255-octet name. It parses, and holds no more than the bound allows.
#[test]
fn pointer_bomb_stays_within_the_bound() {
    let mut wire = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    let long = format!("{}.{}", vec!["a".repeat(63); 3].join("."), "b".repeat(61));
    // The name at 12 as a question.
    wire.extend_from_slice(Name::from_text(&long).unwrap().as_wire());
    wire.extend_from_slice(&[0, 1, 0, 1]);
    let n = (65535 - wire.len()) / 12;
    for _ in 0..n {
        wire.extend_from_slice(&[0xC0, 12, 0, 99, 0, 1, 0, 0, 0, 0, 0, 0]);
    }
    wire[6..8].copy_from_slice(&(n as u16).to_be_bytes());
    let m = Message::parse(&wire).unwrap();
    assert_eq!(m.answers.len(), n);
    exercise(&wire, &[]);
}
