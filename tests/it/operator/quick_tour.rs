//! The README's first five minutes (SPEC 12): the Set-up's `serve` and the
//! Quick tour, pasted as one block, run as a shell script. Only what must change
//! is replaced: `cargo run … --` by the binary under test, and port 8080 by a
//! free one (through a config file that sets nothing but `http_listen`, beside
//! the working directory, so the paths are the built-in defaults' `data/…`).
use crate::common::proc::{run_with_timeout, TempDir};
use crate::common::readme::recipe as block;
use crate::common::server::{free_tcp, BIN};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn quick_tour_works_pasted_as_one_block() {
    let dir = TempDir::new("tour");
    let d = dir.path();
    let addr = free_tcp("127.0.0.1").expect("a free port");
    let config = d.join("config.toml");
    std::fs::write(&config, format!("[server]\nhttp_listen = [\"{addr}\"]\n")).unwrap();

    // Set-up: `cargo run --release -- serve`, as the binary.
    let setup = block("setup");
    let serve_args = setup
        .lines()
        .find_map(|l| {
            l.split('#')
                .next()?
                .trim()
                .strip_prefix("cargo run --release -- ")
        })
        .expect("the serve command in the Set-up block");
    assert_eq!(serve_args, "serve");
    let log = d.join("serve.log");
    let mut server = Command::new(BIN)
        .arg(serve_args)
        .current_dir(d)
        .env("DEDYN_UPDATE_CONFIG", &config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start the server");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("serving with")
    {
        assert!(Instant::now() < deadline, "server did not start");
        assert!(server.try_wait().unwrap().is_none(), "server exited");
        std::thread::sleep(Duration::from_millis(20));
    }

    let tour = block("quick-tour")
        .replace("cargo run -q --release --", BIN)
        .replace("127.0.0.1:8080", &addr.to_string());
    let script = d.join("tour.sh");
    std::fs::write(&script, &tour).unwrap();
    let mut cmd = Command::new("bash");
    cmd.current_dir(d)
        .arg(&script)
        .env("DEDYN_UPDATE_CONFIG", &config)
        .env("RUST_LOG", "warn");
    let out = run_with_timeout(cmd, d, Duration::from_secs(60));
    let _ = server.kill();
    let _ = server.wait();
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(out.success(), "{}\n{log}", out.text);
    let text = out.text;
    for expected in [
        "good",
        "A 1.2.3.4\nAAAA fd08::1234\n",
        "alice.dedyn.example. 60 IN A 1.2.3.4",
        "alice.dedyn.example. 60 IN AAAA fd08::1234",
        "would answer: 200 good",
        "serial: ",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}\n{log}"
        );
    }
    assert!(!text.contains("error"), "{text}");
}

/// SPEC 12: the unit's `Documentation=` names a file the install steps (and the
/// package) put there: the README, in `/usr/share/doc/dedyn-update/`.
#[test]
fn unit_documentation_points_at_the_installed_readme() {
    let unit = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/dedyn-update.service"));
    let doc = unit
        .lines()
        .find_map(|l| l.strip_prefix("Documentation="))
        .expect("Documentation= in the unit");
    let path = doc
        .strip_prefix("file://")
        .expect("a file:// documentation link");
    assert_eq!(path, "/usr/share/doc/dedyn-update/README.md");
    let readme = crate::common::readme::all_text();
    assert!(
        readme.contains(&format!("sudo install -D -m 0644 README.md {path}")),
        "the install steps do not put README.md at {path}"
    );
}
