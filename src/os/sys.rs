//! The few operating-system calls std does not offer, each wrapped and explained:
//! listening sockets (IPV6_V6ONLY, deep backlog; UDP too), poll(2), listener
//! shutdown, RLIMIT_NOFILE, and reload commands as process groups (waitid without reaping, killpg).
//!
//! Every `unsafe` block of the crate lives in `os/`. Linux is the target
//! (systemd service on a VPS or a Raspberry Pi); the calls are plain POSIX apart
//! from `SOCK_CLOEXEC`.

use std::io;
use std::mem;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Creates a listening TCP socket on `addr`.
///
/// std's `TcpListener::bind` cannot set options before `bind`, and we need two:
/// `IPV6_V6ONLY`, so that `[::]:80` and `0.0.0.0:80` can both be configured
/// (with the Linux default of dual-stack sockets the second bind fails with
/// EADDRINUSE), and a backlog deeper than std's 128, because under a connection
/// flood the listen backlog is where real clients wait (SPEC 9).
pub(crate) fn listen_tcp(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
    let fd = bound_socket(addr, libc::SOCK_STREAM)?;
    // SAFETY: listen(2) on a descriptor we own; no pointers.
    if unsafe { libc::listen(fd.as_raw_fd(), backlog) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(TcpListener::from(fd))
}

/// A UDP socket bound to `addr`, with `IPV6_V6ONLY` for the same reason as
/// `listen_tcp`: `[::]:5353` and `0.0.0.0:5353` can both be configured (DNS
/// UPDATE listens on UDP and TCP on each address, SPEC 14).
pub(crate) fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    Ok(UdpSocket::from(bound_socket(addr, libc::SOCK_DGRAM)?))
}

/// A socket of `kind` bound to `addr`: SO_REUSEADDR, and IPV6_V6ONLY for IPv6.
fn bound_socket(addr: SocketAddr, kind: libc::c_int) -> io::Result<OwnedFd> {
    let family = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: socket(2) takes no pointers; a negative result is checked below.
    let raw = unsafe { libc::socket(family, kind | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor that nothing else owns; from here on
    // OwnedFd closes it on every error path.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };

    // SO_REUSEADDR lets a restarted service bind while old connections of the
    // previous process sit in TIME_WAIT (std sets it too).
    set_int_option(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    if family == libc::AF_INET6 {
        set_int_option(fd.as_raw_fd(), libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)?;
    }

    let rc = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: all-zero is a valid sockaddr_in; the fields we need are set below.
            let mut sin: libc::sockaddr_in = unsafe { mem::zeroed() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(a.ip().octets()),
            };
            // SAFETY: the pointer and length describe `sin`, which outlives the call.
            unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&sin as *const libc::sockaddr_in).cast(),
                    mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
        }
        SocketAddr::V6(a) => {
            // SAFETY: all-zero is a valid sockaddr_in6; the fields we need are set below.
            let mut sin6: libc::sockaddr_in6 = unsafe { mem::zeroed() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_scope_id = a.scope_id();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            // SAFETY: the pointer and length describe `sin6`, which outlives the call.
            unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&sin6 as *const libc::sockaddr_in6).cast(),
                    mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        }
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

fn set_int_option(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the pointer and length describe `value`, which outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether IPV6_V6ONLY is set on a socket (for tests of `listen_tcp`).
#[cfg(test)]
pub(crate) fn is_v6only(fd: RawFd) -> io::Result<bool> {
    let mut value: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the pointers describe `value` and `len`, which outlive the call.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value != 0)
}

/// Wakes a thread blocked in `accept` on this listener (Linux returns EINVAL to
/// it) so that shutdown does not have to wait for one more client. std has no
/// `shutdown` for listeners; the descriptor stays owned by the listener.
pub(crate) fn wake_acceptor(listener: &impl AsRawFd) {
    // SAFETY: shutdown(2) on a descriptor that `listener` keeps open for the
    // duration of the call; no pointers. A failure only means nobody is woken
    // early, so its result is ignored.
    unsafe {
        libc::shutdown(listener.as_raw_fd(), libc::SHUT_RD);
    }
}

/// The id of the group named `name` (or given as a number), for `unix_group`.
pub(crate) fn group_id(name: &str) -> io::Result<u32> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    let not_found = || io::Error::new(io::ErrorKind::NotFound, format!("no group '{name}'"));
    let c_name = std::ffi::CString::new(name).map_err(|_| not_found())?;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: a zeroed `group` is a valid out-parameter (null pointers, 0 ids).
    let mut group: libc::group = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call: the NUL-terminated name, the
    // out-structure, `buf` with its true length (the strings `group` points
    // into live there; we read only `gr_gid`), and `found`.
    let rc = unsafe {
        libc::getgrnam_r(
            c_name.as_ptr(),
            &mut group,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    if found.is_null() {
        return Err(not_found());
    }
    Ok(group.gr_gid)
}

/// The effective user id of this process: the owner a private directory must
/// have, and whom messages name as the one something was tried as.
pub(crate) fn effective_uid() -> u32 {
    // SAFETY: geteuid(2) takes no arguments and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether this process has CAP_FOWNER (root has it unless dropped), which
/// overrides a sticky directory's rule: from the effective set in
/// /proc/self/status; unreadable counts as no.
pub(crate) fn has_cap_fowner() -> bool {
    // linux/capability.h; the libc crate does not define capability numbers.
    const CAP_FOWNER: u32 = 3;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << CAP_FOWNER) != 0)
}

/// Readiness bits we ask `poll` for and get back.
pub(crate) const POLLIN: i16 = libc::POLLIN;

/// Waits until `fd` has something to read (data, EOF or an error) or `timeout`
/// passes. Returns whether it is ready. A signal interrupting the wait counts as
/// "not ready": callers loop against their own deadline anyway.
///
/// This is the only way a connection thread blocks on a read, so a timeout is
/// always in force and no loop can spin on a socket that has nothing to say.
pub(crate) fn wait_readable(fd: RawFd, timeout: Duration) -> io::Result<bool> {
    let mut pfd = [readable(fd)];
    poll_readable(&mut pfd, timeout)
}

/// Waits until one of `fds` has something to read (data, EOF or an error) or
/// `timeout` passes; returns, per descriptor, whether it is ready. A signal
/// interrupting the wait counts as "none ready", as in `wait_readable`.
pub(crate) fn wait_any_readable(fds: &[RawFd], timeout: Duration) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds.iter().map(|&fd| readable(fd)).collect();
    poll_readable(&mut pfds, timeout)?;
    Ok(pfds.iter().map(|p| p.revents != 0).collect())
}

fn readable(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: POLLIN,
        revents: 0,
    }
}

/// poll(2) over `pfds` for at most `timeout`: whether any is ready (their
/// `revents` say which). Interrupted by a signal: none ready.
fn poll_readable(pfds: &mut [libc::pollfd], timeout: Duration) -> io::Result<bool> {
    // Round up so that a 0.4 ms remainder waits 1 ms instead of busy-polling.
    let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
    // SAFETY: the pointer and count describe `pfds`, which outlives the call.
    let rc = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            pfds.iter_mut().for_each(|p| p.revents = 0);
            return Ok(false);
        }
        return Err(err);
    }
    Ok(rc > 0 && pfds.iter().any(|p| p.revents != 0))
}

/// Whether our child `pid` has exited, WITHOUT reaping it (waitid with
/// WNOWAIT): until it is reaped its PID stays taken, so the process group it
/// led can still be killed without hitting a new process that got the number.
pub(crate) fn child_exited(pid: u32) -> io::Result<bool> {
    // SAFETY: all-zero is a valid siginfo_t; waitid fills it.
    let mut info: libc::siginfo_t = unsafe { mem::zeroed() };
    // SAFETY: the pointer describes `info`, which outlives the call.
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // With WNOHANG and nothing to report, waitid leaves si_pid 0.
    // SAFETY: `info` was zeroed and then filled by waitid; si_pid is valid for
    // the SIGCHLD information waitid returns.
    Ok(unsafe { info.si_pid() } != 0)
}

/// Kills the process group led by `pid` (a child started with `process_group(0)`),
/// so that a reload command that timed out, was superseded or exited takes
/// everything it started with it (SPEC 17). Call it before reaping `pid`.
pub(crate) fn kill_process_group(pid: u32) {
    // SAFETY: kill(2) on a process group id; no memory is touched. A failure means
    // the group is already gone, which is what we wanted.
    unsafe {
        libc::kill(-(pid as i32), libc::SIGKILL);
    }
}

/// The soft and hard RLIMIT_NOFILE of this process.
// rlim_t is u32 on 32-bit ARM (older Raspberry Pi OS), so the casts are not no-ops there.
#[allow(clippy::unnecessary_cast)]
pub(crate) fn nofile_limits() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: the pointer describes `lim`, which outlives the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((lim.rlim_cur as u64, lim.rlim_max as u64))
}

/// Sets the soft RLIMIT_NOFILE (the hard limit is left alone).
#[allow(clippy::unnecessary_cast)]
pub(crate) fn set_nofile_soft(soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: the pointer describes `lim`, which outlives the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The value of RLIM_INFINITY, for callers that must not try to set it for
/// RLIMIT_NOFILE (Linux refuses it; the real ceiling is fs.nr_open).
#[allow(clippy::unnecessary_cast)]
pub(crate) const RLIM_INFINITY: u64 = libc::RLIM_INFINITY as u64;

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv6Addr, SocketAddrV6};

    #[test]
    fn ipv6_listeners_are_v6only_so_v4_wildcard_can_coexist() {
        let addr = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 0, 0, 0));
        let l = listen_tcp(addr, 16).expect("bind [::1]:0");
        assert!(is_v6only(l.as_raw_fd()).expect("getsockopt"));
    }

    #[test]
    fn wait_readable_times_out_without_data() {
        let l = listen_tcp("127.0.0.1:0".parse().expect("addr"), 16).expect("bind");
        let started = std::time::Instant::now();
        let ready = wait_readable(l.as_raw_fd(), Duration::from_millis(20)).expect("poll");
        assert!(!ready);
        assert!(started.elapsed() >= Duration::from_millis(15));
    }
}
