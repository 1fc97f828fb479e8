//! The administrative commands (SPEC 2) over the store, one file per command group,
//! and their help texts; `run` dispatches every command but `serve` to its file.

use crate::config::settings::Config;

pub mod acme;
pub mod add;
pub mod args;
pub mod backup;
pub mod check;
pub mod config_file;
pub mod domains;
pub mod explain;
pub mod history;
pub mod import;
pub mod man;
pub mod nameserver;
pub mod records;
pub mod rules;
pub mod standby;
pub mod status;
pub mod tokens;
pub mod unit_groups;
pub mod users;

pub use args::{usage, Args, Failure, Out};

/// Run one administrative command (everything but `serve`) with its arguments.
pub fn run(config: &Config, cmd: &str, rest: &[String]) -> Out {
    match cmd {
        "user" => users::user(config, rest),
        "domain" => domains::domain(config, rest),
        "token" => tokens::token(config, rest),
        "import" => import::import(config, rest),
        "records" => records::records(config, rest),
        "acme" => acme::acme(config, rest),
        "zone" => records::zone(config, rest),
        "check" => check::check(config, rest),
        "explain" => explain::explain(config, rest),
        "status" => status::status(config, rest),
        "history" => history::history(config, rest),
        "nameserver" => nameserver::run(config, rest),
        "backup" => backup::backup(config, rest),
        "restore" => backup::restore(config, rest),
        "standby" => standby::run(config, rest),
        other => Err(usage(format!(
            "unknown command '{other}' (see dedyn-update --help)"
        ))),
    }
}

/// `dedyn-update --help`: every command on one screen.
pub const HELP: &str = "\
dedyn-update: a self-hosted dynDNS update server (deSEC's IP update API)

usage: dedyn-update [--config FILE] COMMAND [ARGS]
       (without --config: $DEDYN_UPDATE_CONFIG, else built-in defaults)

commands:
  serve                                  run the service until SIGTERM/SIGINT
  user add EMAIL | list | remove EMAIL   manage users
  domain add NAME --owner EMAIL [--force]
                                         register NAME (strictly below a configured zone);
                                         --force: past [limits] domains_per_user
  domain list [--owner EMAIL] | remove NAME
  domain set NAME --ttl SECONDS          TTL of its records and the names below it
  token add --owner EMAIL [--name TEXT] [--allowed-subnet CIDR]... [--expires-in SECONDS]
            [--domain NAME]... [--family v4|v6|both] [--scope update|acme|both]
                                         create a token; prints the secret once
  token list [--owner EMAIL] | revoke ID
  import [--force]                       many 'user add' / 'domain add' / 'token add' lines from
                                         stdin in one transaction; prints each token's secret
  records NAME                           show the A/AAAA records stored for NAME
  acme set NAME VALUE [--force] | clear NAME
                                         put/remove _acme-challenge.NAME TXT values (ACME DNS-01)
  zone render ZONE                       print the zone file as it would be published now
  check [--reload]                       validate config and database; try what the service will do
  status NAME                            stored records, their serial, what the nameserver serves
  history NAME [--limit N] [--json]      the name's address changes, newest first
  explain 'URL' [--header 'Name: value']... [--peer ADDR]
                                         run an update request without writing, step by step,
                                         with each name's records before and after
  nameserver nsd|knot|bind [--dnssec]    print the nameserver's side for the configured zones
  config set SECTION.KEY VALUE...        change keys of the config file, keeping the rest of it
  backup FILE                            consistent copy of the database, also while serving
  restore FILE                           replace the database with a backup (service stopped)
  standby status | promote [--force]     a warm standby fed by Litestream: the copy's age; take it over

Run 'dedyn-update COMMAND --help' for one command.";

/// `dedyn-update COMMAND --help`: one command's usage and what it does.
pub fn command_help(cmd: &str) -> Option<&'static str> {
    Some(match cmd {
        "serve" => "usage: dedyn-update serve\nServe the update API until SIGTERM/SIGINT (graceful); SIGHUP reloads the TLS certificate.",
        "user" => "usage: dedyn-update user add EMAIL | user list | user remove EMAIL\nremove deletes the user's domains, tokens and records.",
        "domain" => "usage: dedyn-update domain add NAME --owner EMAIL [--force] | domain list [--owner EMAIL] | domain remove NAME\n       dedyn-update domain set NAME --ttl SECONDS\nNAME must lie strictly below a configured zone; remove deletes its records.\nadd refuses a domain past [limits] domains_per_user unless --force.\nset --ttl: the TTL of the records of NAME and the names below it, within\n[dns] min_ttl and max_ttl; list shows it ('NAME ttl SECONDS').",
        "token" => "usage: dedyn-update token add --owner EMAIL [--name TEXT] [--allowed-subnet CIDR]... [--expires-in SECONDS] [--domain NAME]... [--family v4|v6|both] [--scope update|acme|both]\n       dedyn-update token list [--owner EMAIL] | token revoke ID\nadd prints the secret once; only its hash is stored. --scope: what the token may do:\naddress updates (update, the default), acme-dns calls for certificates (acme), or both.",
        "import" => "usage: dedyn-update import [--force] < FILE\n\
Reads lines from stdin, each an add command as on the command line without the program name:\n\
\x20 user add EMAIL\n\
\x20 domain add NAME --owner EMAIL\n\
\x20 token add --owner EMAIL [--name TEXT] [--allowed-subnet CIDR]... [--expires-in SECONDS] [--domain NAME]... [--family v4|v6|both]\n\
Words are separated by whitespace (no quoting); empty lines and lines starting with '#' are skipped.\n\
Each line is checked exactly like the command. All lines run in one transaction: on a bad line\n\
the command exits non-zero naming the line number, and nothing is imported. After the commit,\n\
prints the secret of each new token, one a line, in the order of the token lines.\n\
Every line is checked and every secret made before the write lock is taken; an import that\n\
would hold the lock over 30 s gives up (nothing imported): split it. --force: every\n\
'domain add' line may go past [limits] domains_per_user.",
        "records" => "usage: dedyn-update records NAME\nPrints 'A addr' / 'AAAA addr' lines, A first, in numeric order, then\n'TXT _acme-challenge.NAME \"VALUE\"' lines, oldest first.",
        "acme" => "usage: dedyn-update acme set NAME VALUE [--force] | acme clear NAME\nset: write _acme-challenge.NAME TXT \"VALUE\" (VALUE: 1-255 of A-Z a-z 0-9 - _); the two most\nrecent values per name are kept and each is removed an hour after it was written.\n_acme-challenge.NAME must fit DNS's 253 characters, and a new one counts against\n[limits] names_per_domain unless --force.\nclear: remove every value of NAME now.",
        "zone" => "usage: dedyn-update zone render ZONE\nPrints the zone file with the serial it would carry.",
        "check" => "usage: dedyn-update check [--reload]\nValidates the config file and the database, and tries as the user running it what the\nservice will do: open the database, write in each zone file's directory, load the TLS\ncertificate and key (with https_listen). Each problem is a line on stderr naming the key\nand the file; exit 1 if any. --reload also runs each zone's reload command once and, with\n[dns] verify_server, waits until the nameserver serves the published serial.",
        "status" => "usage: dedyn-update status NAME\nPrints the stored records, the serial that contains them, last changed and last seen\n(and 'stale'), and (with [dns] verify_server) what the nameserver answers now, ending\nwith 'served' or 'not yet served'.",
        "history" => "usage: dedyn-update history NAME [--limit N] [--json]\nPrints the name's address changes, newest first (at most N, default 50): time, type,\nold and new addresses, the way in (http, dns-update, cli), client and token id.\n--json: one JSON object a line, with the fields of a change event.",
        "explain" => "usage: dedyn-update explain 'URL' [--header 'Name: value']... [--peer ADDR]\nRuns the update pipeline without writing and prints which rule decided what, and per\nname and family the records before and after (what would be written).\nExit 0: the request would succeed; 1: it would be refused. --peer defaults to 127.0.0.1.",
        "nameserver" => nameserver::USAGE,
        "config" => config_file::USAGE,
        "standby" => standby::USAGE,
        _ => return backup::help(cmd),
    })
}
