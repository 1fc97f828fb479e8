//! UPDATE messages captured from real clients, for known-answer tests: each
//! was sent to a UDP socket on 127.0.0.1 that only recorded it (no answer).
//!
//! Keys: `test-key` hmac-sha256 with secret bytes 0..=31
//! (`AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=`), `test-key512`
//! hmac-sha512 with secret bytes 0..=63. Made with BIND 9's `nsupdate -k FILE`
//! and Knot's `knsupdate -y ALG:NAME:SECRET` (Debian bind9-dnsutils,
//! knot-dnsutils), scripts shown above each message.

/// hmac-sha256 key `test-key`.
pub const SECRET_256: [u8; 32] = {
    let mut s = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        s[i] = i as u8;
        i += 1;
    }
    s
};

/// hmac-sha512 key `test-key512`.
pub const SECRET_512: [u8; 64] = {
    let mut s = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        s[i] = i as u8;
        i += 1;
    }
    s
};

/// `nsupdate -k test-key.key` (hmac-sha256), signed at 0x6b16bddd:
/// zone dyn.example. / prereq yxdomain Host.dyn.example. /
/// update delete host.dyn.example. A / update add host.dyn.example. 60 A 192.0.2.1 /
/// update add host.dyn.example. 60 AAAA 2001:db8::1
pub const NSUPDATE_SHA256: &str = "b90b280000010001000300010364796e076578616d706c65000006000104486f7374c00c00ff00ff00000000000004686f7374c00c000100ff000000000000c02e000100010000003c0004c0000201c02e001c00010000003c001020010db800000000000000000000000108746573742d6b65790000fa00ff00000000003d0b686d61632d7368613235360000006b16bddd012c00207bfefb4d5d933eae878141b688a5e248680611c16115483d33fa3979b734782eb90b00000000";

/// `nsupdate -k test-key512.key` (hmac-sha512; the file says `Test-Key512`, the
/// wire `test-key512`),
/// signed at 0x6b16bdde: zone dyn.example. /
/// update add _acme-challenge.host.dyn.example. 60 TXT "abc-DEF_123"
pub const NSUPDATE_SHA512: &str = "e781280000010000000100010364796e076578616d706c6500000600010f5f61636d652d6368616c6c656e676504686f73740364796e076578616d706c6500001000010000003c000c0b6162632d4445465f3132330b746573742d6b65793531320000fa00ff00000000005d0b686d61632d7368613531320000006b16bdde012c004001bafcd18e439e945240d7f91258a3003412f7bb8a24b8091efec863927fe42e4562ca1cf6e4af7e84f408b930ed1b64f103dfac8999b8b5bd779b5441d38493e78100000000";

/// `knsupdate -y hmac-sha256:test-key:…`, signed at 0x6b16bde9: zone dyn.example. /
/// prereq nxrrset host.dyn.example. AAAA / update add host.dyn.example. 60 A 192.0.2.7 /
/// update del host.dyn.example. A 192.0.2.1
pub const KNSUPDATE_SHA256: &str = "93a4280000010001000200010364796e076578616d706c65000006000104686f7374c00c001c00fe000000000000c01d000100010000003c0004c0000207c01d000100fe000000000004c000020108746573742d6b65790000fa00ff00000000003d0b686d61632d7368613235360000006b16bde9012c002043f52c1ecff8139dcee3f0ec12fb0ba1b16a8ec57ddd79a44cd3fdb715aaa54c93a400000000";

/// `knsupdate -y hmac-sha512:Test-Key512:…`, signed at 0x6b16bde5: zone dyn.example. /
/// update del host.dyn.example.
pub const KNSUPDATE_SHA512: &str = "5dc9280000010000000100010364796e076578616d706c65000006000104686f7374c00c00ff00ff0000000000000b746573742d6b65793531320000fa00ff00000000005d0b686d61632d7368613531320000006b16bde5012c0040274e48b37a7b2cdd518037d04d3c937484111323641abe7374a6d480c11f89c3af7683613e55d367316064f7620715bf508868d91a8f52aaf2a854ede77f570d5dc900000000";

/// All four, with the secret and the time each was signed.
pub const ALL: [(&str, &[u8], u64); 4] = [
    (NSUPDATE_SHA256, &SECRET_256, 0x6b16bddd),
    (NSUPDATE_SHA512, &SECRET_512, 0x6b16bdde),
    (KNSUPDATE_SHA256, &SECRET_256, 0x6b16bde9),
    (KNSUPDATE_SHA512, &SECRET_512, 0x6b16bde5),
];

pub fn bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}
