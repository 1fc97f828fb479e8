//! `dedyn-update [--config FILE] COMMAND`: parse the command line and dispatch.
//! Nothing else lives here.

use dedyn_update::admin::{self, usage, Failure};
use dedyn_update::config::Config;
use std::io::Write;
use std::path::PathBuf;

const HELP: &str = "\
dedyn-update: a self-hosted dynDNS update server (deSEC's IP update API)

usage: dedyn-update [--config FILE] COMMAND [ARGS]
       (without --config: $DEDYN_UPDATE_CONFIG, else built-in defaults)

commands:
  serve                                  run the service until SIGTERM/SIGINT
  user add EMAIL | list | remove EMAIL   manage users
  domain add NAME --owner EMAIL          register NAME (strictly below a configured zone)
  domain list [--owner EMAIL] | remove NAME
  token add --owner EMAIL [--name TEXT] [--allowed-subnet CIDR]... [--expires-in SECONDS]
            [--domain NAME]... [--family v4|v6|both]
                                         create a token; prints the secret once
  token list [--owner EMAIL] | revoke ID
  import                                 many 'user add' / 'domain add' / 'token add' lines from
                                         stdin in one transaction; prints each token's secret
  records NAME                           show the A/AAAA records stored for NAME
  zone render ZONE                       print the zone file as it would be published now
  check                                  validate the config file and the database
  status NAME                            stored records, their serial, what the nameserver serves
  explain 'URL' [--header 'Name: value']... [--peer ADDR]
                                         run an update request without writing, step by step
  backup FILE                            consistent copy of the database, also while serving
  restore FILE                           replace the database with a backup (service stopped)

Run 'dedyn-update COMMAND --help' for one command.";

fn command_help(cmd: &str) -> Option<&'static str> {
    Some(match cmd {
        "serve" => "usage: dedyn-update serve\nServe the update API until SIGTERM/SIGINT (graceful); SIGHUP reloads the TLS certificate.",
        "user" => "usage: dedyn-update user add EMAIL | user list | user remove EMAIL\nremove deletes the user's domains, tokens and records.",
        "domain" => "usage: dedyn-update domain add NAME --owner EMAIL | domain list [--owner EMAIL] | domain remove NAME\nNAME must lie strictly below a configured zone; remove deletes its records.",
        "token" => "usage: dedyn-update token add --owner EMAIL [--name TEXT] [--allowed-subnet CIDR]... [--expires-in SECONDS] [--domain NAME]... [--family v4|v6|both]\n       dedyn-update token list [--owner EMAIL] | token revoke ID\nadd prints the secret once; only its hash is stored.",
        "import" => "usage: dedyn-update import < FILE\n\
Reads lines from stdin, each an add command as on the command line without the program name:\n\
\x20 user add EMAIL\n\
\x20 domain add NAME --owner EMAIL\n\
\x20 token add --owner EMAIL [--name TEXT] [--allowed-subnet CIDR]... [--expires-in SECONDS] [--domain NAME]... [--family v4|v6|both]\n\
Words are separated by whitespace (no quoting); empty lines and lines starting with '#' are skipped.\n\
Each line is checked exactly like the command. All lines run in one transaction: on a bad line\n\
the command exits non-zero naming the line number, and nothing is imported. After the commit,\n\
prints the secret of each new token, one a line, in the order of the token lines.",
        "records" => "usage: dedyn-update records NAME\nPrints 'A addr' / 'AAAA addr' lines, A first, in numeric order.",
        "zone" => "usage: dedyn-update zone render ZONE\nPrints the zone file with the serial it would carry.",
        "check" => "usage: dedyn-update check\nValidates the config file and the database; exits non-zero naming each problem.",
        "status" => "usage: dedyn-update status NAME\nPrints the stored records, the serial that contains them, and (with [dns] verify_server)\nwhat the nameserver answers now, ending with 'served' or 'not yet served'.",
        "explain" => "usage: dedyn-update explain 'URL' [--header 'Name: value']... [--peer ADDR]\nRuns the update pipeline without writing and prints which rule decided what.\nExit 0: the request would succeed; 1: it would be refused. --peer defaults to 127.0.0.1.",
        _ => return dedyn_update::backup::help(cmd),
    })
}

fn init_logging() {
    let env = env_logger::Env::default().default_filter_or("info");
    env_logger::Builder::from_env(env)
        .format(|buf, record| {
            writeln!(
                buf,
                "{} {} {}",
                dedyn_update::os::clock::rfc3339(dedyn_update::os::clock::now_unix()),
                record.level(),
                record.args()
            )
        })
        .init();
}

fn run(mut args: Vec<String>) -> Result<(), Failure> {
    let mut config_path: Option<PathBuf> = None;
    while let Some(first) = args.first() {
        if first == "--config" {
            if args.len() < 2 {
                return Err(usage("--config needs a file"));
            }
            config_path = Some(PathBuf::from(args.remove(1)));
            args.remove(0);
        } else if let Some(p) = first.strip_prefix("--config=") {
            config_path = Some(PathBuf::from(p));
            args.remove(0);
        } else {
            break;
        }
    }
    let Some(cmd) = args.first().cloned() else {
        println!("{HELP}");
        return Err(Failure {
            message: String::new(),
            code: 2,
        });
    };
    let rest = &args[1..];
    match cmd.as_str() {
        "--help" | "-h" | "help" => {
            println!("{HELP}");
            return Ok(());
        }
        "--version" | "-V" => {
            println!("dedyn-update {}", env!("CARGO_PKG_VERSION"));
            return Ok(());
        }
        _ => {}
    }
    if rest.iter().any(|a| a == "--help" || a == "-h") {
        let h = command_help(&cmd)
            .ok_or_else(|| usage(format!("unknown command '{cmd}' (see dedyn-update --help)")))?;
        println!("{h}");
        return Ok(());
    }
    let config_path = config_path.or_else(|| {
        std::env::var_os("DEDYN_UPDATE_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    let config = match &config_path {
        Some(p) => Config::load(p).map_err(|e| Failure::from(e.to_string()))?,
        None => Config::defaults(),
    };
    match cmd.as_str() {
        "serve" => {
            if !rest.is_empty() {
                return Err(usage("serve takes no arguments"));
            }
            dedyn_update::serve::serve(config).map_err(Failure::from)
        }
        "user" => admin::user(&config, rest),
        "domain" => admin::domain(&config, rest),
        "token" => admin::token(&config, rest),
        "import" => admin::import(&config, rest),
        "records" => admin::records(&config, rest),
        "zone" => admin::zone(&config, rest),
        "check" => {
            if !rest.is_empty() {
                return Err(usage("check takes no arguments"));
            }
            admin::check(&config)
        }
        "explain" => admin::explain(&config, rest),
        "status" => admin::status(&config, rest),
        "backup" => dedyn_update::backup::backup(&config, rest),
        "restore" => dedyn_update::backup::restore(&config, rest),
        other => Err(usage(format!(
            "unknown command '{other}' (see dedyn-update --help)"
        ))),
    }
}

fn main() {
    init_logging();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(f) = run(args) {
        if !f.message.is_empty() {
            eprintln!("dedyn-update: {}", f.message);
        }
        std::process::exit(f.code);
    }
}
