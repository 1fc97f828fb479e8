//! The real ddclient (Debian 12: 3.10.0) as a test client: one update run against
//! our server, with a throwaway config and cache in a temp dir and a hard timeout.
//!
//! Observed on the wire (ddclient 3.10.0, `protocol=dyndns2`, `ssl=no`):
//!
//! ```text
//! GET /nic/update?system=dyndns&hostname=alice.dedyn.example&myip=1.2.3.4 HTTP/1.1
//! Host: 127.0.0.1:PORT
//! Authorization: Basic <base64 login:password>
//! User-Agent: ddclient/3.10.0
//! Connection: close
//! ```
//!
//! The Authorization header is sent preemptively, so no `WWW-Authenticate`
//! challenge is needed. ddclient exits 0 even when the update failed; success is
//! its `SUCCESS:` line (it accepts a `good`/`nochg` body), failure a `FAILED:` line.
//! `use=ip, ip=ADDR` works in 3.10 (the newer `usev4=`/`usev6=` are not used).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use super::proc::{run_with_timeout, tool, TempDir};

/// Upper bound for one ddclient run (it retries nothing with `-daemon=0`).
pub const DDCLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs ddclient once: update `hostname` to `ip` at `http://server_host_port`.
/// `Ok` carries ddclient's verbose output when it reports `SUCCESS`, `Err` the
/// output (or the reason it could not run) otherwise.
pub fn run_ddclient_once(
    server_host_port: &str,
    login: &str,
    password: &str,
    hostname: &str,
    ip: &str,
) -> Result<String, String> {
    // ddclient's config syntax has no escaping we want to rely on.
    for (what, value) in [
        ("server", server_host_port),
        ("login", login),
        ("hostname", hostname),
        ("ip", ip),
    ] {
        if value.is_empty() || value.contains(|c: char| c.is_whitespace() || "'\"\\,#=".contains(c))
        {
            return Err(format!(
                "{what} {value:?} cannot be written into a ddclient config"
            ));
        }
    }
    if password.contains(['\'', '\\', '\n', '\r']) {
        return Err(format!(
            "password {password:?} cannot be written into a ddclient config"
        ));
    }

    let dir = TempDir::new("ddclient");
    let conf = dir.path().join("ddclient.conf");
    let cache = dir.path().join("ddclient.cache");
    let text = format!(
        "daemon=0\nsyslog=no\nmail=\nmail-failure=\nssl=no\nprotocol=dyndns2\n\
         use=ip, ip={ip}\nserver={server_host_port}\nlogin={login}\npassword='{password}'\n\
         {hostname}\n"
    );
    fs::write(&conf, text).map_err(|e| format!("write {}: {e}", conf.display()))?;
    // ddclient warns about (and older versions refuse) world-readable configs.
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("chmod {}: {e}", conf.display()))?;

    let mut cmd = Command::new(tool("ddclient"));
    cmd.args(["-daemon=0", "-foreground", "-noquiet", "-verbose"])
        .arg("-file")
        .arg(&conf)
        .arg("-cache")
        .arg(&cache);
    let out = run_with_timeout(cmd, dir.path(), DDCLIENT_TIMEOUT);
    if out.success() && out.text.contains("SUCCESS:") && !out.text.contains("FAILED:") {
        Ok(out.text)
    } else {
        Err(out.text)
    }
}
