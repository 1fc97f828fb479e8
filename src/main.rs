//! `dedyn-update [--config FILE] COMMAND`: parse the command line and dispatch.
//! Nothing else lives here.
#![forbid(unsafe_code)]

use dedyn_update::cli::args::print_lines;
use dedyn_update::cli::{self, usage, Failure, HELP};
use dedyn_update::config::settings::Config;
use std::io::Write;
use std::path::PathBuf;

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
        print_lines([HELP.to_string()]);
        return Err(Failure {
            message: String::new(),
            code: 2,
        });
    };
    let rest = &args[1..];
    match cmd.as_str() {
        "--help" | "-h" | "help" => {
            print_lines([HELP.to_string()]);
            return Ok(());
        }
        "--version" | "-V" => {
            print_lines([format!("dedyn-update {}", env!("CARGO_PKG_VERSION"))]);
            return Ok(());
        }
        _ => {}
    }
    if rest.iter().any(|a| a == "--help" || a == "-h") {
        let h = cli::command_help(&cmd)
            .ok_or_else(|| usage(format!("unknown command '{cmd}' (see dedyn-update --help)")))?;
        print_lines([h.to_string()]);
        return Ok(());
    }
    let config_path = config_path.or_else(|| {
        std::env::var_os("DEDYN_UPDATE_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    if cmd == "man" {
        // The manual pages (not in --help): no config needed.
        return cli::man::run(rest);
    }
    if cmd == "config" {
        // Edits the file itself: it need not load as it is.
        return cli::config_file::run(config_path.as_deref(), rest);
    }
    let config = match &config_path {
        Some(p) => Config::load(p)?,
        None => Config::defaults_here()?,
    };
    match cmd.as_str() {
        "serve" => {
            if !rest.is_empty() {
                return Err(usage("serve takes no arguments"));
            }
            dedyn_update::serve::serve(config).map_err(Failure::from)
        }
        other => cli::run(&config, other, rest),
    }
}

fn main() {
    init_logging();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(f) = run(args) {
        if !f.message.is_empty() {
            eprintln!("{}{}", cli::args::PREFIX, f.message);
        }
        std::process::exit(f.code);
    }
}
