//! The configuration file (TOML, SPEC 3): a typed `Config` with a default for
//! every key, validated at start-up so that a bad value names its key and file.
//!
//! `raw` is the file as written, `validate` turns it into the `settings` types,
//! `load` reads a file (or the defaults) through both; `paths` keeps every
//! configured path apart; `edit` rewrites keys for `config set`.

pub mod edit;
pub mod error;
mod load;
mod paths;
mod raw;
pub mod settings;
mod validate;
