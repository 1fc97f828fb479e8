//! SPEC 17: no configured path may be another's. A zone file equal to the
//! database (or one of SQLite's files beside it), the config file or another
//! zone's file would be overwritten by the first publication; a directory is
//! no file at all. Paths are compared after resolving them, as the kernel will.

use super::error::Problem;
use super::settings::Config;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// Files SQLite (and `serve`'s lock, `os::serve_lock`) keep beside the database:
/// overwriting one of them loses or corrupts the data as surely as the database.
const DATABASE_SIDECARS: [&str; 4] = ["-wal", "-shm", "-journal", ".serve-lock"];

/// One configured path, with the key that names it.
struct Entry {
    key: String,
    path: PathBuf,
    /// The service writes it (the database, the zone files): it must be no
    /// other entry's file. Files it only reads may be each other's (a PEM file
    /// with both the certificate and the key is common).
    written: bool,
}

/// The configured paths that name a file, each with its key: of a whole
/// config, or of the values that were usable in one that is not.
#[derive(Default)]
pub(super) struct Files(Vec<Entry>);

impl Files {
    /// Every path of `config` that names a file.
    pub(super) fn of(config: &Config) -> Files {
        let mut files = Files::default();
        if let Some(source) = &config.source {
            files.config_file(source);
        }
        files.database(&config.database.path);
        for (i, z) in config.zones.iter().enumerate() {
            files.zone(i, Some(&z.file), z.include.as_deref());
        }
        files.tls(&config.server.tls_cert, &config.server.tls_key);
        files
    }

    fn add(&mut self, key: String, path: &Path, written: bool) {
        self.0.push(Entry {
            key,
            path: path.to_path_buf(),
            written,
        });
    }

    /// The config file itself (absolute), named first.
    pub(super) fn config_file(&mut self, source: &Path) {
        self.add("the config file".into(), source, false);
        self.0.rotate_right(1);
    }

    /// The database and the files SQLite keeps beside it.
    pub(super) fn database(&mut self, db: &Path) {
        self.add("database.path".into(), db, true);
        for suffix in DATABASE_SIDECARS {
            let mut side = db.as_os_str().to_owned();
            side.push(suffix);
            self.add(
                format!("database.path's {suffix} file"),
                Path::new(&side),
                true,
            );
        }
    }

    /// Zone `i`'s file (`None`: unusable) and include.
    pub(super) fn zone(&mut self, i: usize, file: Option<&Path>, include: Option<&Path>) {
        if let Some(file) = file {
            self.add(format!("zone[{i}].file"), file, true);
        }
        if let Some(inc) = include {
            self.add(format!("zone[{i}].include"), inc, false);
        }
    }

    pub(super) fn tls(&mut self, cert: &Path, key: &Path) {
        self.add("server.tls_cert".into(), cert, false);
        self.add("server.tls_key".into(), key, false);
    }

    /// Every relative path made absolute against `base`, as `Config::resolve_paths` does.
    pub(super) fn resolve(&mut self, base: &Path) {
        for e in &mut self.0 {
            if e.path.is_relative() {
                e.path = base.join(&e.path);
            }
        }
    }
}

/// Every clash among the paths, each naming both keys and paths; and every
/// path that is an existing directory (it clashes with nothing).
pub(super) fn check_distinct(files: &Files) -> Result<(), Vec<Problem>> {
    let all = &files.0;
    let resolved: Vec<Resolved> = all.iter().map(|e| Resolved::of(&e.path)).collect();
    let mut problems = Vec::new();
    for (i, a) in all.iter().enumerate() {
        // The config file itself is a directory only in a path nobody could read.
        if a.key != "the config file" && resolved[i].is_dir {
            problems.push(Problem::from(format!(
                "{} {}: is a directory, not a file path",
                a.key,
                a.path.display()
            )));
        }
    }
    for (i, a) in all.iter().enumerate() {
        for (j, b) in all.iter().enumerate().skip(i + 1) {
            // The database's own files are one thing; reads may share a file.
            let same_database =
                a.key.starts_with("database.path") && b.key.starts_with("database.path");
            if same_database
                || !(a.written || b.written)
                || resolved[i].is_dir
                || resolved[j].is_dir
            {
                continue;
            }
            if resolved[i].same_file(&resolved[j]) {
                // Name the written one first: it is the one that would destroy the other.
                let (w, o) = if a.written { (a, b) } else { (b, a) };
                problems.push(Problem::from(format!(
                    "{} {} is the same file as {} ({}): the service would overwrite it; give each its own path",
                    w.key,
                    w.path.display(),
                    o.key,
                    o.path.display()
                )));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// A path as the kernel will find it: symbolic links and `..` resolved where
/// the path exists, and the file's identity when it exists.
struct Resolved {
    path: PathBuf,
    inode: Option<(u64, u64)>,
    is_dir: bool,
}

impl Resolved {
    fn of(path: &Path) -> Resolved {
        let meta = std::fs::metadata(path).ok();
        Resolved {
            path: resolve(path),
            inode: meta.as_ref().map(|m| (m.dev(), m.ino())),
            is_dir: meta.is_some_and(|m| m.is_dir()),
        }
    }

    /// Two existing files are the same when they are one inode (hard links,
    /// bind mounts); otherwise when they resolve to one path.
    fn same_file(&self, other: &Resolved) -> bool {
        match (self.inode, other.inode) {
            (Some(a), Some(b)) => a == b,
            _ => self.path == other.path,
        }
    }
}

/// The longest existing ancestor of `path` canonicalized, and the rest (which
/// does not exist yet, so holds no links) appended with `.` and `..` applied.
fn resolve(path: &Path) -> PathBuf {
    let mut rest = Vec::new();
    let mut base = path;
    loop {
        if let Ok(real) = std::fs::canonicalize(base) {
            let mut out = real;
            for c in rest.iter().rev() {
                match c {
                    Component::ParentDir => {
                        out.pop();
                    }
                    Component::Normal(n) => out.push(n),
                    _ => {}
                }
            }
            return out;
        }
        match (base.parent(), base.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last);
                base = if parent.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    parent
                };
            }
            // Nothing of it exists (not even `/` or `.`): compare as written.
            _ => return path.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str, dir: &Path) -> Result<Config, String> {
        Config::parse(text, Some(&dir.join("config.toml"))).map_err(|e| e.to_string())
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dedyn-paths-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A zone file on the database, a sidecar of it, the config file or another
    /// zone's include is refused naming both keys, also through `..` and links.
    #[test]
    fn a_zone_file_may_not_be_another_configured_file() {
        let d = temp_dir("clash");
        std::fs::create_dir_all(d.join("zones")).unwrap();
        std::fs::create_dir_all(d.join("deep/er")).unwrap();
        std::os::unix::fs::symlink(d.join("zones"), d.join("link")).unwrap();
        // `..` after a link leaves the link's target, not the link's directory.
        std::os::unix::fs::symlink(d.join("deep/er"), d.join("deeper")).unwrap();
        let db = "[database]\npath = \"db.sqlite3\"\n";
        for (file, other) in [
            ("db.sqlite3", "database.path"),
            ("zones/../db.sqlite3", "database.path"),
            ("db.sqlite3-wal", "database.path's -wal file"),
            ("db.sqlite3-journal", "database.path's -journal file"),
            ("config.toml", "the config file"),
            ("deeper/../../db.sqlite3", "database.path"),
        ] {
            let text = format!("{db}[[zone]]\nname = \"dyn.example\"\nfile = \"{file}\"\n");
            let e = config(&text, &d).unwrap_err();
            assert!(
                e.contains("zone[0].file") && e.contains(other),
                "{file}: {e}"
            );
        }
        let text = format!(
            "{db}[[zone]]\nname = \"a.example\"\nfile = \"zones/a.zone\"\n\
             [[zone]]\nname = \"b.example\"\nfile = \"b.zone\"\ninclude = \"link/a.zone\"\n"
        );
        let e = config(&text, &d).unwrap_err();
        assert!(
            e.contains("zone[0].file") && e.contains("zone[1].include"),
            "{e}"
        );
        // Two clashes in one file: both named, each on its own line.
        let text = format!(
            "{db}[[zone]]\nname = \"a.example\"\nfile = \"db.sqlite3\"\n\
             [[zone]]\nname = \"b.example\"\nfile = \"config.toml\"\n"
        );
        let e = config(&text, &d).unwrap_err();
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 2, "{e}");
        assert!(
            lines[0].contains("zone[1].file") && lines[0].contains("the config file"),
            "{e}"
        );
        assert!(
            lines[1].contains("zone[0].file") && lines[1].contains("database.path"),
            "{e}"
        );
        // A clash is named with the bad values of other keys; a zone file
        // already named as used twice is not named again as a clash.
        let text = format!(
            "{db}[server]\nworkers = 0\n[[zone]]\nname = \"a b\"\nfile = \"db.sqlite3\"\n\
             [[zone]]\nname = \"c.example\"\nfile = \"c.zone\"\n\
             [[zone]]\nname = \"d.example\"\nfile = \"c.zone\"\n"
        );
        let e = config(&text, &d).unwrap_err();
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 4, "{e}");
        assert!(lines[0].contains("server.workers"), "{e}");
        assert!(lines[1].contains("zone[0].name"), "{e}");
        assert!(
            lines[2].contains("zone[2].file") && lines[2].contains("two zones"),
            "{e}"
        );
        assert!(
            lines[3].contains("zone[0].file") && lines[3].contains("database.path"),
            "{e}"
        );
        // The database is a zone's file, written the other way round.
        let text = "[database]\npath = \"zones/a.zone\"\n[[zone]]\nname = \"a.example\"\nfile = \"zones/a.zone\"\n";
        let e = config(text, &d).unwrap_err();
        assert!(
            e.contains("zone[0].file") && e.contains("database.path"),
            "{e}"
        );
        // A hard link is the same file under another name.
        std::fs::write(d.join("cert.pem"), "x").unwrap();
        std::fs::hard_link(d.join("cert.pem"), d.join("zones/a.zone")).unwrap();
        let text = format!(
            "{db}[server]\ntls_cert = \"cert.pem\"\n[[zone]]\nname = \"a.example\"\nfile = \"zones/a.zone\"\n"
        );
        let e = config(&text, &d).unwrap_err();
        assert!(
            e.contains("zone[0].file") && e.contains("server.tls_cert"),
            "{e}"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// Distinct files pass, a certificate and key in one PEM file too; an
    /// existing directory is named.
    #[test]
    fn distinct_paths_pass_and_a_directory_is_named() {
        let d = temp_dir("ok");
        let text = "[database]\npath = \"db.sqlite3\"\n[server]\ntls_cert = \"both.pem\"\ntls_key = \"both.pem\"\n\
                    [[zone]]\nname = \"a.example\"\nfile = \"zones/a.zone\"\n";
        config(text, &d).unwrap();
        std::fs::create_dir_all(d.join("db.sqlite3")).unwrap();
        let e = config(text, &d).unwrap_err();
        assert!(
            e.contains("database.path") && e.contains("directory"),
            "{e}"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
