//! `standby status` and `standby promote` (SPEC 16): judge the copy Litestream's
//! follower keeps on a standby, and take it over when the primary is lost;
//! `standby replicate` and `standby follow` start Litestream for the units.
//!
//! Litestream does the replicating (docs/standby.md); here are only the
//! decisions: how old the copy is (its newest heartbeat), whether the primary
//! answers, and a promotion's steps — restore the newest state, check it, move
//! every serial above anything the old primary can have published, fence the
//! location taken over — each safe to run again.

use super::args::{missing_database, print_lines, usage, Args, Failure, Out};
use super::backup::{sibling, sync_dir_of, sync_file};
use crate::config::settings::Config;
use crate::os::clock::{now_unix, rfc3339};
use crate::standby::HEARTBEAT_EVERY;
use crate::standby::{self, fence_location, Fence, StandbyError};
use crate::store::{self, read_copy, CopyState, Promotion, Store};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const USAGE: &str =
    "usage: dedyn-update standby replicate LITESTREAM_YML | follow | status | promote [--force]\n\
replicate: run Litestream replicating the database to [standby] replica (exec), with the\n\
config file LITESTREAM_YML, in which ${DEDYN_UPDATE_DATABASE} and ${DEDYN_UPDATE_REPLICA}\n\
stand for the two; refuses, as serve does, when a promoted standby took the location over.\n\
follow: run Litestream's follower (`litestream restore -f`) from [standby] follow into the\n\
copy DATABASE.follow beside the database (made anew at each start); for the follow unit.\n\
status: how old this standby's copy is (by the primary's newest heartbeat in it), its\n\
serials, and (with [standby] primary) whether the primary answers. Exit 1 when the copy\n\
is older than [standby] max_age_secs.\n\
promote: take the copy over (the follower and the service stopped): restore the newest\n\
state from [standby] follow with Litestream, check it, move every zone's serial above\n\
anything the old primary can have published, leave a fence at the follow location (the\n\
old primary then refuses to serve), put the copy in place and run `check`. Then start the\n\
service and Litestream replicating to [standby] replica. Running it again does nothing\n\
more. Refuses a copy older than max_age_secs, naming its age, unless --force.";

/// `dedyn-update standby …`
pub fn run(config: &Config, rest: &[String]) -> Out {
    match rest.first().map(String::as_str) {
        Some("replicate") => replicate(config, &rest[1..]),
        Some("follow") => follow(config, &rest[1..]),
        Some("status") => status(config, &rest[1..]),
        Some("promote") => promote(config, &rest[1..]),
        _ => Err(usage(USAGE)),
    }
}

/// The follower's copy: beside the database, never the database itself, so
/// that a promotion never races a follower that was left running.
pub fn follow_copy(config: &Config) -> PathBuf {
    let mut p = config.database.path.as_os_str().to_owned();
    p.push(".follow");
    PathBuf::from(p)
}

/// `standby replicate FILE`: become Litestream replicating the database
/// (exec), the database and the location from this config, so that
/// `config.toml` is the one place that names them.
fn replicate(config: &Config, args: &[String]) -> Out {
    use std::os::unix::process::CommandExt;
    let a = Args::parse(args, &[])?;
    let file = a.exactly(1, "standby replicate LITESTREAM_YML")?[0].clone();
    let s = &config.standby;
    if s.replica.is_empty() {
        return Err(Failure::from(format!(
            "standby.replica is not set ({}): name the location Litestream replicates to",
            config.origin()
        )));
    }
    let promoted = store::promoted_and_not_served_since(&config.database.path);
    standby::refuse_if_fenced(config, promoted).map_err(|e| Failure::from(e.to_string()))?;
    let db =
        std::path::absolute(&config.database.path).unwrap_or_else(|_| config.database.path.clone());
    let e = std::process::Command::new(&s.litestream)
        .args(["replicate", "-config", &file])
        .env("DEDYN_UPDATE_DATABASE", &db)
        .env("DEDYN_UPDATE_REPLICA", &s.replica)
        .env_remove("AWS_CA_BUNDLE")
        .exec();
    Err(Failure::from(format!(
        "cannot run {} (standby.litestream): {e}",
        s.litestream
    )))
}

/// `standby follow`: become Litestream's follower (exec). Its copy is
/// disposable, so it starts from a fresh restore each time (Litestream 0.5
/// cannot always resume one: "saved TXID … is ahead of latest snapshot").
fn follow(config: &Config, args: &[String]) -> Out {
    use std::os::unix::process::CommandExt;
    Args::parse(args, &[])?.exactly(0, "standby follow (no arguments)")?;
    let s = &config.standby;
    if s.follow.is_empty() {
        return Err(Failure::from(format!(
            "standby.follow is not set ({}): name the primary's replica location",
            config.origin()
        )));
    }
    let copy = follow_copy(config);
    if !standby::followers_of(&copy).is_empty() {
        return Err(Failure::from(format!(
            "a follower already writes {}",
            copy.display()
        )));
    }
    remove_db_files(&copy);
    let mut txid = copy.as_os_str().to_owned();
    txid.push("-txid");
    let _ = std::fs::remove_file(PathBuf::from(txid));
    let out = copy.to_string_lossy().into_owned();
    eprintln!(
        "dedyn-update: standby follow: {} restore -f -o {out} {}",
        s.litestream, s.follow
    );
    let e = std::process::Command::new(&s.litestream)
        .args(["restore", "-f", "-o", &out, &s.follow])
        .env_remove("AWS_CA_BUNDLE")
        .exec();
    Err(Failure::from(format!(
        "cannot run {} (standby.litestream): {e}",
        s.litestream
    )))
}

/// Seconds between the copy's newest proof of life and `now`.
fn age_of(copy: &CopyState, now: i64) -> Option<i64> {
    copy.newest.map(|n| (now - n).max(0))
}

fn describe_heartbeat(copy: &CopyState, now: i64) -> String {
    match &copy.heartbeat {
        Some(h) => format!(
            "newest heartbeat: {} from {} (pid {}), {} s ago",
            rfc3339(h.at),
            h.host,
            h.pid,
            (now - h.at).max(0)
        ),
        None => "newest heartbeat: none (no serve with a heartbeat wrote this copy)".into(),
    }
}

/// Whether `primary` (`HOST:PORT`) accepts a TCP connection within 2 s.
fn primary_answers(primary: &str) -> Result<(), StandbyError> {
    let addrs: Vec<_> = primary
        .to_socket_addrs()
        .map_err(|e| StandbyError(format!("cannot resolve: {e}")))?
        .collect();
    let mut last = String::from("no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, Duration::from_secs(2)) {
            Ok(_) => return Ok(()),
            Err(e) => last = format!("{a}: {e}"),
        }
    }
    Err(StandbyError(last))
}

/// `standby status`
fn status(config: &Config, args: &[String]) -> Out {
    Args::parse(args, &[])?.exactly(0, "standby status (no arguments)")?;
    // The follower's copy on a standby; the database itself on a primary (or
    // a promoted standby).
    let follower = follow_copy(config);
    let db = if follower.exists() {
        &follower
    } else {
        &config.database.path
    };
    if !db.try_exists().unwrap_or(true) {
        return Err(missing_database(config));
    }
    let copy = read_copy(db)?;
    let now = now_unix();
    let mut lines = vec![
        format!("copy: {} (schema {})", db.display(), copy.schema_version),
        describe_heartbeat(&copy, now),
    ];
    lines.extend(
        copy.serials
            .iter()
            .map(|(z, s)| format!("zone {z}: next serial {s}")),
    );
    lines.extend(copy.promotions.iter().map(|p| {
        format!(
            "promoted on {} at {}, taking over {} (serials from {})",
            p.host,
            rfc3339(p.at),
            p.taken_over,
            p.serial_floor
        )
    }));
    let s = &config.standby;
    if !s.primary.is_empty() {
        lines.push(match primary_answers(&s.primary) {
            Ok(()) => format!("primary {}: answers", s.primary),
            Err(e) => format!("primary {}: does not answer ({e})", s.primary),
        });
    }
    let max = s.max_age.as_secs() as i64;
    let promoted = copy
        .promotions
        .iter()
        .any(|p| !s.follow.is_empty() && p.taken_over == s.follow);
    let verdict = match age_of(&copy, now) {
        _ if promoted => Ok("this copy was promoted: it is the primary now".to_string()),
        Some(age) if age <= max => Ok(format!(
            "copy: {age} s behind the primary's newest proof of life (bound {max} s): `standby promote` may take it over"
        )),
        Some(age) => Err(format!(
            "copy: {age} s old, over standby.max_age_secs = {max}: only `standby promote --force` takes it over"
        )),
        None => Err("copy: age unknown (no heartbeat): only `standby promote --force` takes it over".into()),
    };
    match verdict {
        Ok(l) => {
            lines.push(l);
            print_lines(lines);
            Ok(())
        }
        Err(l) => {
            print_lines(lines);
            Err(Failure::from(l))
        }
    }
}

/// The most publications per second one zone's publisher starts: the next
/// batch waits `publish_delay` from its first change, so about one per delay
/// (twice that, for slack); with no delay, 1000 (each publication renders,
/// writes and reloads: milliseconds).
fn publications_per_sec(config: &Config) -> i64 {
    match config.dns.publish_delay.as_millis() as i64 {
        0 => 1000,
        ms => (2000 / ms).clamp(1, 1000),
    }
}

/// The serial every zone starts from after a promotion: above the copy's, the
/// clock, and every publication the old primary can have started since the
/// copy's newest proof of life (it may have run `age` + one heartbeat period
/// past it). Capped far inside RFC 1982's 2^31 step.
fn serial_floor(config: &Config, copy: &CopyState, now: i64, age: Option<i64>) -> i64 {
    let highest = copy.serials.iter().map(|(_, s)| *s).max().unwrap_or(0);
    // No heartbeat (a forced promotion): allow a day of publications.
    let window = age.unwrap_or(86_400) + HEARTBEAT_EVERY.as_secs() as i64;
    let ahead = (publications_per_sec(config) * window + 1).min(1 << 30);
    highest.max(now) + ahead
}

fn remove_db_files(path: &Path) {
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// The fence at `follow` for this promotion: read first (a run again finds
/// its own), else written. Another host's fence means a second promotion of
/// the same primary: refused, whatever `--force`.
fn fence(
    config: &Config,
    follow: &str,
    ours: &Fence,
    found: Result<Option<Fence>, StandbyError>,
) -> Result<(), Failure> {
    match found {
        Ok(Some(f)) if f.host == ours.host => Ok(()),
        Ok(Some(f)) => Err(Failure::from(format!(
            "{follow} was already taken over by a standby promoted on {} at {} (it replicates to {}): refusing a second writer",
            f.host,
            rfc3339(f.at),
            f.new_replica
        ))),
        Ok(None) => standby::write_fence(config, follow, ours)
            .map_err(|e| Failure::from(format!("cannot leave the fence at {follow}: {e}; nothing was promoted"))),
        Err(e) => Err(Failure::from(format!(
            "cannot read the fence at {}: {e}; nothing was promoted",
            fence_location(follow)
        ))),
    }
}

/// `standby promote [--force]`
fn promote(config: &Config, args: &[String]) -> Out {
    let a = Args::parse_with_switches(args, &[], &["force"])?;
    a.exactly(0, "standby promote [--force]")?;
    let started = Instant::now();
    let s = &config.standby;
    let origin = config.origin();
    if s.follow.is_empty() {
        return Err(Failure::from(format!(
            "standby.follow is not set ({origin}): name the primary's replica location to promote from"
        )));
    }
    if s.replica.is_empty() {
        return Err(Failure::from(format!(
            "standby.replica is not set ({origin}): name the new location this machine replicates to once it serves"
        )));
    }
    let db = &config.database.path;
    let host = standby::host_name();
    // Run again (also while the promoted copy serves): it is already this
    // promotion's, and only the fence is made sure of.
    if db.exists() {
        if let Some(p) = read_copy(db)?
            .promotions
            .into_iter()
            .find(|p| p.taken_over == s.follow)
        {
            let ours = Fence {
                at: p.at,
                host: p.host.clone(),
                new_replica: s.replica.clone(),
            };
            fence(
                config,
                &s.follow,
                &ours,
                standby::read_fence(config, &s.follow),
            )?;
            print_lines([format!(
                "already promoted on {} at {} from {} (serials from {}): start the service and Litestream replicating to {}",
                p.host,
                rfc3339(p.at),
                p.taken_over,
                p.serial_floor,
                s.replica
            )]);
            return Ok(());
        }
    }
    let copy = follow_copy(config);
    let mut followers = standby::followers_of(db);
    followers.extend(standby::followers_of(&copy));
    if !followers.is_empty() {
        return Err(Failure::from(format!(
            "Litestream's follower still runs (pid {}): stop it first (systemctl stop dedyn-update-follow); nothing was changed",
            followers
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    store::ensure_not_in_use(db)?;
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let staging = sibling(db, "promote");
    remove_db_files(&staging);
    let mut steps: Vec<(&str, Duration)> = Vec::new();
    let result = promote_staged(config, &staging, &host, a.has("force"), &mut steps);
    let (info, promotion) = match result {
        Ok(r) => r,
        Err(f) => {
            remove_db_files(&staging);
            return Err(f);
        }
    };
    for suffix in ["-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
    std::fs::rename(&staging, db).map_err(|e| {
        remove_db_files(&staging);
        format!("renaming into {}: {e}", db.display())
    })?;
    sync_dir_of(db).map_err(|e| format!("syncing the directory of {}: {e}", db.display()))?;
    // Litestream's state beside the database was the old database's: left
    // there, it would continue that file's history at the new location.
    if let Some(name) = db.file_name() {
        let state = db.with_file_name(format!(".{}-litestream", name.to_string_lossy()));
        let _ = std::fs::remove_dir_all(state);
    }
    // The follower's copy is of the old primary: `status` reads the database now.
    remove_db_files(&copy);
    let mut txid = copy.as_os_str().to_owned();
    txid.push("-txid");
    let _ = std::fs::remove_file(PathBuf::from(txid));
    let checking = Instant::now();
    super::check::check(config, &[]).map_err(|f| {
        Failure::from(format!(
            "promoted, but check failed ({}): fix it, then start the service",
            f.message
        ))
    })?;
    steps.push(("check", checking.elapsed()));
    let steps: Vec<String> = steps
        .iter()
        .map(|(what, d)| format!("{what} {} ms", d.as_millis()))
        .collect();
    let age = promotion
        .copy_age
        .map_or("of unknown age".to_string(), |a| format!("{a} s old"));
    print_lines([format!(
        "promoted {} from {} in {} ms ({}): copy {age} ({} users, {} domains, {} records); every zone's serial is now at least {}; fence left at {}. \
         Start the service and Litestream replicating to {}",
        db.display(),
        s.follow,
        started.elapsed().as_millis(),
        steps.join(", "),
        info.users,
        info.domains,
        info.records,
        promotion.serial_floor,
        fence_location(&s.follow),
        s.replica
    )]);
    Ok(())
}

/// Refuse a copy older than `[standby] max_age_secs`, naming its age (`what`
/// says which copy), unless `force`.
fn judge_age(config: &Config, copy: &CopyState, now: i64, what: &str) -> Result<(), Failure> {
    let max = config.standby.max_age.as_secs() as i64;
    match age_of(copy, now) {
        Some(a) if a <= max => Ok(()),
        Some(a) => Err(Failure::from(format!(
            "{what} is {a} s old ({}), over standby.max_age_secs = {max}: the primary may have acknowledged updates it does not hold. \
             `standby promote --force` takes it over anyway",
            describe_heartbeat(copy, now)
        ))),
        None => Err(Failure::from(format!(
            "{what} has no heartbeat, so its age is unknown: `standby promote --force` takes it over anyway"
        ))),
    }
}

/// What the fencing thread leaves: done, or the fence it found for later.
type Fencing = Result<Option<Result<Option<Fence>, StandbyError>>, Failure>;

/// Restore into `staging`, check, judge the age, move the serials, fence.
///
/// The fence goes up while the copy is restored (each is a round of requests
/// to the location, about 0.5 s to an S3 endpoint) when the follower's copy
/// already shows that the promotion goes ahead (young enough, or `--force`);
/// else it is read meanwhile and written after the restored copy was judged,
/// so that a refused promotion fences nothing.
fn promote_staged(
    config: &Config,
    staging: &Path,
    host: &str,
    force: bool,
    steps: &mut Vec<(&'static str, Duration)>,
) -> Result<(store::BackupInfo, Promotion), Failure> {
    let started = Instant::now();
    let s = &config.standby;
    let now = now_unix();
    let ours = Fence {
        at: now,
        host: host.to_string(),
        new_replica: s.replica.clone(),
    };
    // An old or missing follower's copy decides nothing: the restored copy
    // (newer, if the follower had stopped) is judged in any case.
    let fence_early = force
        || read_copy(&follow_copy(config))
            .is_ok_and(|copy| judge_age(config, &copy, now, "the follower's copy").is_ok());
    let out = staging.to_string_lossy().into_owned();
    let (restored, fencing) = std::thread::scope(|scope| {
        let fencer = scope.spawn(|| -> Fencing {
            let found = standby::read_fence(config, &s.follow);
            if fence_early {
                fence(config, &s.follow, &ours, found)?;
                return Ok(None);
            }
            Ok(Some(found))
        });
        let restored = standby::litestream(config, &["restore", "-o", &out, &s.follow]);
        let fencing = fencer
            .join()
            .unwrap_or_else(|_| Err(Failure::from("fencing failed".to_string())));
        (restored, fencing)
    });
    let found = fencing?;
    restored
        .map_err(|e| Failure::from(format!("restoring the newest state from {}: {e}", s.follow)))?;
    steps.push(("restore and fence", started.elapsed()));
    let info = store::check_restorable(staging, Path::new(&s.follow))?;
    let mut store = Store::open(staging, &config.database.synchronous)?;
    let integrity: String = store.quick_check()?;
    if integrity != "ok" {
        return Err(Failure::from(format!(
            "the copy restored from {} is damaged: {integrity}",
            s.follow
        )));
    }
    let copy = store.copy_state()?;
    let age = age_of(&copy, now);
    if !force {
        judge_age(
            config,
            &copy,
            now,
            &format!("the copy restored from {}", s.follow),
        )?;
    }
    let promotion = Promotion {
        at: now,
        host: host.to_string(),
        taken_over: s.follow.clone(),
        copy_age: age,
        serial_floor: serial_floor(config, &copy, now, age),
    };
    store.promote(&promotion)?;
    drop(store);
    sync_file(staging).map_err(|e| format!("syncing {}: {e}", staging.display()))?;
    // The fence before the copy goes live: from here the old primary refuses.
    if let Some(found) = found {
        let fencing = Instant::now();
        fence(config, &s.follow, &ours, found)?;
        steps.push(("fence", fencing.elapsed()));
    }
    Ok((info, promotion))
}
