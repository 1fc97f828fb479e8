//! The one composition of a zone file, behind the publisher and `zone render`:
//! the include file, then every stored row that passes the publisher's check.

use super::check::{self, LeftOut, Row, ZoneCheck};
use super::error::PublishError;
use super::zone;
use crate::config::Zone;
use crate::os::clock::now_unix;
use crate::store::Store;
use log::error;

/// What `render_zone` put into the file.
#[derive(Debug, Default)]
pub struct Rendered {
    /// Records rendered from the store (addresses and `_acme-challenge` values).
    pub records: usize,
    /// Rows left out because they would break the zone (SPEC 17), each logged.
    pub left_out: Vec<check::LeftOut>,
}

/// At most this many left-out rows are logged one by one per rendering; the
/// rest are summed up in one line (a damaged database must not flood the log).
const LEFT_OUT_LOGGED: usize = 10;

/// The zone file with `serial`, from the include file and the stored records:
/// the one composition behind the publisher and `zone render`. Every row passes
/// `check::ZoneCheck` first: one that would make the nameserver refuse the zone
/// is left out, logged as an ERROR naming it, and the rest is rendered (SPEC 17).
pub fn render_zone(
    zone: &Zone,
    ttl: u32,
    serial: u32,
    store: &Store,
    out: &mut Vec<u8>,
) -> Result<Rendered, PublishError> {
    let include = zone::read_include(zone).map_err(PublishError::Include)?;
    let mut check = ZoneCheck::new(&zone.name);
    let mut left_out = Vec::new();
    let records = zone::render(
        zone,
        ttl,
        serial,
        include.as_deref(),
        |emit| {
            store.for_each_record(&zone.name, |name, stored| {
                let row = match stored {
                    Ok(addr) => Row::Address { name, addr },
                    Err(bad) => Row::BadAddress {
                        name,
                        rtype: bad.family.rtype(),
                        len: bad.len,
                    },
                };
                match (check.row(&row), stored) {
                    (Ok(()), Ok(addr)) => emit(name, addr),
                    // `check` refuses every `BadAddress`: no `Ok` without an address.
                    (Ok(()), Err(_)) => {}
                    (Err(why), _) => left_out.push(LeftOut::new(&row, why)),
                }
            })
        },
        out,
    )?;
    // SPEC 10: the live _acme-challenge values, after the addresses.
    let values = store.for_each_acme_value(&zone.name, now_unix(), |name, value| {
        let row = Row::AcmeTxt { name, value };
        match check.row(&row) {
            Ok(()) => zone::render_acme_txt(name, ttl, value, out),
            Err(why) => left_out.push(LeftOut::new(&row, why)),
        }
    })?;
    for l in left_out.iter().take(LEFT_OUT_LOGGED) {
        error!(
            "zone {}: left out {}: {}; the rest of the zone is published (fix or delete the row; acme clear NAME removes an acme_txt row)",
            zone.name, l.row, l.reason
        );
    }
    if left_out.len() > LEFT_OUT_LOGGED {
        error!(
            "zone {}: left out {} more rows that would break the zone",
            zone.name,
            left_out.len() - LEFT_OUT_LOGGED
        );
    }
    Ok(Rendered {
        records: (records + values).saturating_sub(left_out.len()),
        left_out,
    })
}
