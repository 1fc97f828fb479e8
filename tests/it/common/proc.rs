//! Process and temp-dir plumbing for the harness: find a Debian tool, run it with a
//! hard timeout, and own a scratch directory that is removed on drop. std only.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often we look at a running child or a condition we wait for.
pub const POLL: Duration = Duration::from_millis(10);

/// A directory under the system temp dir, removed recursively on drop.
///
/// Paths are kept short (unix sockets live in here: `sun_path` is 108 bytes) and
/// free of whitespace (they end up in `reload_command`, which may be split on spaces).
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let mut base = std::env::temp_dir();
        if base.as_os_str().len() > 40 || base.to_string_lossy().contains(char::is_whitespace) {
            base = PathBuf::from("/tmp");
        }
        for _ in 0..100 {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = base.join(format!(
                "dedyn-{tag}-{}-{n}-{:x}",
                std::process::id(),
                nanos
            ));
            match fs::create_dir(&path) {
                Ok(()) => return TempDir { path },
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("cannot create temp dir {}: {e}", path.display()),
            }
        }
        panic!("cannot find a free temp dir name under {}", base.display());
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Absolute path of an installed tool. Looks in `PATH` and in the sbin
/// directories (not on a non-root `PATH`, but where Debian puts nsd and knotd).
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Like `find_tool`, but a missing tool is a test failure that says how to fix it.
pub fn tool(name: &str) -> PathBuf {
    find_tool(name).unwrap_or_else(|| {
        panic!("`{name}` is not installed; run tests/install-deps.sh (as root) first")
    })
}

/// What a finished (or killed) command left behind.
pub struct Output {
    /// `None` when it was killed on timeout.
    pub status: Option<ExitStatus>,
    /// stdout followed by stderr.
    pub text: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

/// Runs `cmd` to completion or until `timeout`, then kills it (by PID, via `Child`).
/// Output goes to files in `scratch`, not pipes, so a chatty child cannot block on a
/// full pipe while we wait for it.
pub fn run_with_timeout(mut cmd: Command, scratch: &Path, timeout: Duration) -> Output {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let out_path = scratch.join(format!("cmd-{n}.out"));
    let err_path = scratch.join(format!("cmd-{n}.err"));
    let out = File::create(&out_path).expect("create stdout file");
    let err = File::create(&err_path).expect("create stderr file");
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {desc}: {e}"));
    let status = wait_with_deadline(&mut child, Instant::now() + timeout);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let mut text = read_lossy(&out_path);
    text.push_str(&read_lossy(&err_path));
    let _ = fs::remove_file(&out_path);
    let _ = fs::remove_file(&err_path);
    if status.is_none() {
        text.push_str(&format!("\n[killed after {timeout:?}: {desc}]"));
    }
    Output { status, text }
}

/// Polls `child` until it exits or `deadline` passes; `None` if still running.
pub fn wait_with_deadline(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(POLL),
            _ => return None,
        }
    }
}

/// File contents as text, or empty when unreadable (logs that were never written).
pub fn read_lossy(path: &Path) -> String {
    let mut buf = Vec::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Sends `signal` to `pid`. The harness kills exactly the daemons it started, by PID.
pub fn signal(pid: u32, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; the PID is
    // that of our own child, which we have not reaped yet, so it cannot be reused.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// PIDs of the live children of `parent` (from /proc), e.g. NSD's server and xfrd
/// processes, so that they can be waited for and, if need be, killed by PID too.
pub fn child_pids(parent: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| proc_stat(pid).is_some_and(|(state, ppid)| ppid == parent && state != 'Z'))
        .collect()
}

/// True while `pid` exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|(state, _)| state != 'Z')
}

/// (state, ppid) from /proc/PID/stat; the command name in parentheses may hold
/// spaces, so fields are counted from its closing parenthesis.
fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Stops a daemon and the processes it forked (NSD's server and xfrd, Knot's,
/// BIND's): SIGTERM to the main one first — it then tells its children to quit,
/// which a SIGKILL would not (they would keep holding the port) — then, within
/// `within`, SIGKILL by PID whatever is still there (the children are
/// reparented once the main process is gone).
pub fn stop_tree(child: &mut Child, within: Duration) {
    let children = child_pids(child.id());
    let deadline = Instant::now() + within;
    if let Ok(None) = child.try_wait() {
        signal(child.id(), libc::SIGTERM);
        if wait_with_deadline(child, deadline).is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    while children.iter().any(|&p| is_alive(p)) && Instant::now() < deadline {
        thread::sleep(POLL);
    }
    for &p in children.iter().filter(|&&p| is_alive(p)) {
        signal(p, libc::SIGKILL);
    }
}

/// Whether the tests run as root (some need to act as another user, or mount).
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) takes no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Say loudly, past libtest's output capture, that a test did not run.
pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    let line = format!("\nSKIPPED: {test}: {why}\n");
    // Written to the stderr handle directly: `eprintln!` would be captured and
    // shown only for failing tests.
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// For a test (or a check) that needs root: true as root, else says SKIPPED (see
/// `skip`) with `why` and returns false. CI's test command runs as root.
pub fn require_root(test: &str, why: &str) -> bool {
    if !is_root() {
        skip(
            test,
            &format!("needs root {why} (the CI test command runs as root)"),
        );
    }
    is_root()
}

/// The environment variable that tells a child of this test program which test
/// it runs alone (`alone`).
const ALONE: &str = "DEDYN_TEST_ALONE";

/// For a test that changes what its whole process shares (the descriptor limit,
/// the process's CPU time): true in a child process of this test program that
/// runs only `test`, where the test goes on; in the calling process, runs that
/// child, fails with its output unless the test passed there, and returns false.
///
/// `test` is `concat!(module_path!(), "::name")`; the program's own name, first
/// in a module path, is not in the names libtest filters by. The child must
/// report exactly one test passed, so a renamed test fails instead of running
/// nothing.
pub fn alone(test: &str) -> bool {
    let test = test.split_once("::").map_or(test, |(_program, path)| path);
    if std::env::var(ALONE).as_deref() == Ok(test) {
        return true;
    }
    let exe = std::env::current_exe().expect("the test program's path");
    let out = Command::new(exe)
        .args([test, "--exact", "--test-threads=1"])
        .env(ALONE, test)
        .stdin(Stdio::null())
        .output()
        .expect("run the test program");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{test} alone in a child process ({}):\n{stdout}\n{stderr}",
        out.status
    );
    false
}
