//! `acme set NAME VALUE` / `acme clear NAME` (SPEC 10: for hooks on the server
//! itself), and the `TXT` lines `records` and `status` show for a name.

use super::args::held;
use super::args::{open, usage, Args, Failure, Out};
use crate::config::settings::Config;
use crate::store::Store;
use crate::update::acme::{challenge_name, check_subdomain, check_value};
use crate::update::bounds::Bounds;
use crate::update::ledger::AcmeWriter;

/// `TXT _acme-challenge.NAME "VALUE"` for each live value of `name`, oldest first.
pub fn txt_lines(store: &Store, zone: &str, name: &str) -> Result<Vec<String>, Failure> {
    Ok(store
        .acme_values(zone, name)?
        .into_iter()
        .map(|(value, _)| format!("TXT {} \"{value}\"", challenge_name(name)))
        .collect())
}

pub fn acme(config: &Config, args: &[String]) -> Out {
    let a = Args::parse_with_switches(args, &[], &["force"])?;
    match a.positional.first().map(String::as_str) {
        Some("set") => {
            let p = a.exactly(3, "acme set NAME VALUE [--force]")?;
            // The same checks as the API, in its words: a wildcard, a name whose
            // _acme-challenge name would be too long for DNS (SPEC 17) or a bad
            // value is refused before the database is touched.
            let name = check_subdomain(Some(&p[1])).map_err(|e| Failure::from(e.to_string()))?;
            check_value(&p[2]).map_err(|e| Failure::from(e.to_string()))?;
            let mut store = open(config)?;
            let (name, domain) = held(&store, &name)?;
            // SPEC 13: the CLI is bound like the API unless --force.
            let limits = if a.has("force") {
                Bounds::NONE
            } else {
                config.limits
            };
            store.acme_set(&domain, &name, &p[2], AcmeWriter::Operator, &limits)?;
        }
        Some("clear") => {
            let p = a.exactly(2, "acme clear NAME")?;
            let mut store = open(config)?;
            let (name, domain) = held(&store, &p[1])?;
            store.acme_clear(&domain.zone, &name)?;
        }
        _ => return Err(usage("expected acme set NAME VALUE | acme clear NAME")),
    }
    Ok(())
}
