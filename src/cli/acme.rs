//! `acme set NAME VALUE` / `acme clear NAME` (SPEC 10: for hooks on the server
//! itself), and the `TXT` lines `records` and `status` show for a name.

use super::args::held;
use super::args::{open, usage, Args, Failure, Out};
use crate::config::Config;
use crate::store::{AcmeWriter, Store};
use crate::update::acme::{challenge_name, check_subdomain, check_value};

/// `TXT _acme-challenge.NAME "VALUE"` for each live value of `name`, oldest first.
pub fn txt_lines(store: &Store, zone: &str, name: &str) -> Result<Vec<String>, Failure> {
    Ok(store
        .acme_values(zone, name)?
        .into_iter()
        .map(|(value, _)| format!("TXT {} \"{value}\"", challenge_name(name)))
        .collect())
}

pub fn acme(config: &Config, args: &[String]) -> Out {
    let a = Args::parse(args, &[])?;
    match a.positional.first().map(String::as_str) {
        Some("set") => {
            let p = a.exactly(3, "acme set NAME VALUE")?;
            // The same checks as the API, in its words: a wildcard or a bad value
            // is refused before the database is touched.
            let name = check_subdomain(Some(&p[1])).map_err(|e| Failure::from(e.to_string()))?;
            check_value(&p[2]).map_err(|e| Failure::from(e.to_string()))?;
            let mut store = open(config)?;
            let (name, domain) = held(&store, &name)?;
            store.acme_set(&domain, &name, &p[2], AcmeWriter::Operator)?;
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
