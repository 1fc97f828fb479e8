//! `dedyn-update --config FILE config set SECTION.KEY VALUE...`: keys of the config
//! file changed in place, the rest of the file (comments included) as it was. The
//! nameserver scripts end with it, so that wiring a nameserver needs no hand edit.
//!
//! The new text must load as a config (`Config::parse`, with the file's path, so
//! the same checks as `serve`); it replaces the file atomically, with the file's
//! owner and mode; nothing is written when any of this fails.

use super::args::failure_lines;
use super::args::{usage, Failure, Out};
use crate::config::edit;
use crate::config::settings::Config;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub const USAGE: &str =
    "usage: dedyn-update --config FILE config set SECTION.KEY VALUE [SECTION.KEY VALUE]...\n\
Sets keys of the config file's sections ([server], [database], [dns], [rate_limit], [limits]),\n\
keeping every other line and comment. VALUE is written as TOML when it is a value of the\n\
key's type (8, true, [\"0.0.0.0:80\"]), otherwise as a string. The result must be a valid\n\
config (as `check` would load it), else nothing is written. Prints each key as set.";

/// `config set …` for the file at `path` (`None`: no config file was named).
pub fn run(path: Option<&Path>, args: &[String]) -> Out {
    let pairs = match args {
        [verb, rest @ ..] if verb == "set" && !rest.is_empty() && rest.len() % 2 == 0 => rest,
        [verb, ..] if verb == "set" => {
            return Err(usage(format!(
                "config set: give SECTION.KEY VALUE pairs\n{USAGE}"
            )))
        }
        _ => return Err(usage(USAGE)),
    };
    let Some(path) = path else {
        return Err(usage(
            "config set edits a config file: name it with --config FILE (or $DEDYN_UPDATE_CONFIG); \
             the built-in defaults have no file to edit",
        ));
    };
    let assignments: Vec<(String, String)> = pairs
        .chunks(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect();
    // Through a symbolic link: the file it names is edited, the link stays.
    let file = fs::canonicalize(path)
        .map_err(|e| Failure::from(format!("{}: cannot open config file: {e}", path.display())))?;
    let text = fs::read_to_string(&file)
        .map_err(|e| Failure::from(format!("{}: cannot read config file: {e}", file.display())))?;
    let (new, written) = edit::set(&text, &assignments)
        .map_err(|e| Failure::from(format!("{}: nothing written: {e}", file.display())))?;
    Config::parse(&new, Some(&file))
        .map_err(|e| failure_lines(e.problems.iter().map(|p| format!("nothing written: {p}"))))?;
    if new != text {
        replace(&file, new.as_bytes())
            .map_err(|e| Failure::from(format!("{}: nothing written: {e}", file.display())))?;
    }
    for line in written {
        println!("{}: {line}", file.display());
    }
    Ok(())
}

/// Replace `file` by `data` atomically (temporary file, fsync, rename), with the
/// old file's mode, owner and group. `Err` means the file is as it was.
fn replace(file: &Path, data: &[u8]) -> std::io::Result<()> {
    let old = fs::metadata(file)?;
    let dir = file.parent().unwrap_or(Path::new("/"));
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = dir.join(format!(".{name}.set{}.{nanos}", std::process::id()));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let result = (|| {
        let now = f.metadata()?;
        if (now.uid(), now.gid()) != (old.uid(), old.gid()) {
            std::os::unix::fs::fchown(&f, Some(old.uid()), Some(old.gid())).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "cannot keep its owner {}:{} ({e}): run as root or as its owner",
                        old.uid(),
                        old.gid()
                    ),
                )
            })?;
        }
        f.set_permissions(fs::Permissions::from_mode(old.mode() & 0o7777))?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, file)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    // Written: a failed sync of the directory only means the rename may not yet
    // be on disk, which is no reason to say "nothing written".
    if let Err(e) = fs::File::open(dir).and_then(|d| d.sync_all()) {
        eprintln!(
            "dedyn-update: warning: {} written, but syncing its directory failed: {e}",
            file.display()
        );
    }
    Ok(())
}
