//! `user add EMAIL | list | remove EMAIL`: the accounts that own domains and tokens.
//! Removing a user removes their domains, tokens and records.

use super::add::{add_one, Add};
use super::args::{open, open_existing, print_lines, usage, Args, Failure, Out};
use super::rules::{check_email, normalize_email};
use crate::config::settings::Config;

pub(crate) const USER_FLAGS: &[&str] = &[];

pub(crate) fn user_add(a: &Args) -> Result<Add, Failure> {
    let p = a.exactly(2, "user add EMAIL")?;
    Ok(Add::User(check_email(&p[1])?))
}

pub fn user(config: &Config, args: &[String]) -> Out {
    let a = Args::parse(args, USER_FLAGS)?;
    match a.positional.first().map(String::as_str) {
        Some("add") => add_one(config, user_add(&a)?)?,
        Some("list") => {
            a.exactly(1, "user list")?;
            print_lines(open_existing(config)?.list_users()?);
        }
        Some("remove") => {
            let p = a.exactly(2, "user remove EMAIL")?;
            open(config)?.remove_user(&normalize_email(&p[1]))?;
        }
        _ => return Err(usage("expected user add|list|remove")),
    }
    Ok(())
}
