//! The documentation itself (README.md and docs/*.md): every link and anchor
//! resolves, every configuration key is documented with the default the code
//! has, each test marker names one block, and no file grows past what a reader
//! can use.

use crate::common::readme;
use dedyn_update::config::settings::Config;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The lines of `text` outside fenced code blocks.
fn prose_lines(text: &str) -> Vec<&str> {
    let mut fenced = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push(line);
        }
    }
    out
}

/// `line` with its inline code spans (`...`) removed.
fn without_code_spans(line: &str) -> String {
    line.split('`').step_by(2).collect::<Vec<_>>().join(" ")
}

/// The anchor GitHub gives a heading: lower case, letters, digits, `-` and `_`
/// kept, spaces made `-`, everything else dropped; a repeated one gets `-1`, `-2`.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for line in prose_lines(text) {
        let Some(title) = line.trim_start_matches('#').strip_prefix(' ') else {
            continue;
        };
        if !line.starts_with('#') {
            continue;
        }
        let slug: String = title
            .trim()
            .chars()
            .filter_map(|c| match c {
                ' ' | '-' => Some('-'),
                '_' => Some('_'),
                c if c.is_alphanumeric() => Some(c.to_lowercase().next().unwrap_or(c)),
                _ => None,
            })
            .collect();
        let n = seen.entry(slug.clone()).or_insert(0);
        out.insert(if *n == 0 {
            slug.clone()
        } else {
            format!("{slug}-{n}")
        });
        *n += 1;
    }
    out
}

/// The targets of the `[text](target)` links of `text` (outside code).
fn link_targets(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose_lines(text) {
        let line = without_code_spans(line);
        let mut rest = line.as_str();
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            if let Some(end) = rest.find(')') {
                out.push(rest[..end].to_string());
                rest = &rest[end..];
            }
        }
    }
    out
}

fn docs_files() -> Vec<PathBuf> {
    readme::files()
}

#[test]
fn every_link_and_anchor_in_the_docs_resolves() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in docs_files() {
        let text = std::fs::read_to_string(&file).expect("read a docs file");
        for target in link_targets(&text) {
            if target.starts_with("http://") || target.starts_with("https://") {
                continue;
            }
            checked += 1;
            let (path, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target.as_str(), None),
            };
            let dest = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap_or(Path::new(ROOT)).join(path)
            };
            if !dest.exists() {
                problems.push(format!(
                    "{}: link to a missing file: {target}",
                    file.display()
                ));
                continue;
            }
            if let Some(anchor) = anchor {
                let dest_text = std::fs::read_to_string(&dest).unwrap_or_default();
                if !anchors(&dest_text).contains(anchor) {
                    problems.push(format!(
                        "{}: link to a missing anchor: {target} (no such heading in {})",
                        file.display(),
                        dest.display()
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        checked > 20,
        "only {checked} links found: is the parser broken?"
    );
}

/// The checker itself: a missing anchor and a missing file are found.
#[test]
fn the_link_checker_finds_missing_files_and_anchors() {
    let text = "# Set-up\n## TLS with Let's Encrypt\n```sh\n# not a heading\n```\n\
                [a](#set-up) `[b](#in-code)` [c](other.md#x)\n";
    assert_eq!(
        anchors(text),
        BTreeSet::from(["set-up".to_string(), "tls-with-lets-encrypt".to_string()])
    );
    assert_eq!(link_targets(text), ["#set-up", "other.md#x"]);
}

/// Every test marker (`<!-- recipe: NAME -->`, `<!-- output of: … -->`,
/// `<!-- tests/packages.sh … -->`) occurs once across README.md and docs/*.md
/// and is followed by a code block.
#[test]
fn every_test_marker_occurs_once_and_names_a_block() {
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for (_, text) in readme::texts() {
        for line in text.lines() {
            if line.starts_with("<!-- recipe: ")
                || line.starts_with("<!-- output of: ")
                || line.starts_with("<!-- tests/packages.sh ")
            {
                *count.entry(line.to_string()).or_insert(0) += 1;
            }
        }
    }
    assert!(count.len() > 25, "{count:?}");
    for (marker, n) in &count {
        assert_eq!(*n, 1, "{marker} occurs {n} times");
        let inner = marker.trim_start_matches("<!-- ").trim_end_matches(" -->");
        assert!(!readme::block_after(inner).is_empty(), "{marker}");
    }
}

#[test]
fn readme_and_docs_files_stay_short() {
    for file in docs_files() {
        let lines = std::fs::read_to_string(&file)
            .expect("read")
            .lines()
            .count();
        let max = if file.ends_with("README.md") {
            300
        } else {
            600
        };
        assert!(
            lines <= max,
            "{} has {lines} lines (at most {max})",
            file.display()
        );
    }
}

/// The keys of `data/dedyn-update.example.toml` (which the unit tests hold to
/// `Config::defaults()`), as `section.key` / `[[zone]] key`.
fn example_keys() -> BTreeSet<String> {
    let text = std::fs::read_to_string(Path::new(ROOT).join("data/dedyn-update.example.toml"))
        .expect("read the example config");
    let mut section = String::new();
    let mut keys = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            section = line.to_string();
            continue;
        }
        if let Some((key, _)) = line.split_once('=') {
            let key = key.trim();
            keys.insert(if section == "[[zone]]" {
                format!("[[zone]] {key}")
            } else {
                format!("{}.{key}", section.trim_matches(['[', ']']))
            });
        }
    }
    keys
}

/// The rows of docs/configuration.md's table: key → the default as written.
fn documented_defaults() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(Path::new(ROOT).join("docs/configuration.md"))
        .expect("read docs/configuration.md");
    let mut rows = BTreeMap::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split(" | ").collect();
        if !line.starts_with("| `") || cells.len() < 3 {
            continue;
        }
        let key = cells[0]
            .trim_start_matches("| ")
            .trim_matches('`')
            .to_string();
        let default = cells[1]
            .split('`')
            .nth(1)
            .unwrap_or_else(|| panic!("{key}: no `default` in {line}"))
            .to_string();
        assert!(rows.insert(key.clone(), default).is_none(), "{key} twice");
    }
    rows
}

/// One key set to `value` in an otherwise empty config, as a TOML text.
fn config_with(key: &str, value: &str) -> String {
    match key.strip_prefix("[[zone]] ") {
        Some("name") => format!("[[zone]]\nname = {value}\n"),
        Some(zone_key) => format!("[[zone]]\nname = \"dedyn.example\"\n{zone_key} = {value}\n"),
        None => {
            let (section, k) = key.split_once('.').expect("section.key");
            format!("[{section}]\n{k} = {value}\n")
        }
    }
}

/// Configuration reference: every key of the config (as the example config,
/// held to `Config::defaults()`, lists them) has a row, no row names a key that
/// does not exist, and each row's default, put into a config file, gives exactly
/// the built-in defaults.
#[test]
fn configuration_reference_matches_the_built_in_defaults() {
    let documented = documented_defaults();
    let keys: BTreeSet<String> = documented.keys().cloned().collect();
    let example = example_keys();
    assert_eq!(
        keys.difference(&example).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "documented in docs/configuration.md but not in data/dedyn-update.example.toml"
    );
    assert_eq!(
        example.difference(&keys).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "keys missing from docs/configuration.md"
    );
    let defaults = format!("{:?}", Config::defaults());
    for (key, written) in &documented {
        // `NAME` in a zone default stands for the zone's name.
        let written = written.replace("NAME", "dedyn.example");
        // A default written as a bare path or name is a TOML string.
        let parsed = Config::parse(&config_with(key, &written), None)
            .or_else(|_| Config::parse(&config_with(key, &format!("{written:?}")), None));
        let config = parsed.unwrap_or_else(|e| panic!("{key} = {written}: {e}"));
        assert_eq!(
            format!("{config:?}"),
            defaults,
            "docs/configuration.md gives {key} the default {written}, which is not the built-in one"
        );
    }
}

/// The check above can fail: a wrong default is noticed.
#[test]
fn a_wrong_documented_default_is_noticed() {
    let wrong = Config::parse(&config_with("server.workers", "5"), None).expect("parses");
    assert_ne!(format!("{wrong:?}"), format!("{:?}", Config::defaults()));
}

/// The `sh` blocks of README.md and docs/*.md, each with its file.
fn sh_blocks() -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for (path, text) in readme::texts() {
        let mut block: Option<String> = None;
        for line in text.lines() {
            match (&mut block, line.trim_start()) {
                (None, "```sh") => block = Some(String::new()),
                (Some(b), l) if l.starts_with("```") => {
                    out.push((path.clone(), std::mem::take(b)));
                    block = None;
                }
                (Some(b), _) => {
                    b.push_str(line);
                    b.push('\n');
                }
                _ => {}
            }
        }
    }
    out
}

/// Commands that open the database (or act on the zones as the service does):
/// run by root they would leave root-owned database files, and without
/// `--config` they would use `./data/` of the current directory.
const SERVICE_USER_COMMANDS: &[&str] = &[
    "user", "domain", "token", "import", "records", "acme", "zone", "check", "status", "explain",
    "history", "backup", "restore", "standby",
];

/// Was: `token add` blocks without `--config` and without the service user:
/// pasted as root, one created `./data/dedyn-update.sqlite3` in the current
/// directory. Every such command in a block names the installed config and
/// runs as `dedyn-update`.
#[test]
fn admin_commands_in_blocks_run_as_the_service_user_with_the_installed_config() {
    let mut problems = Vec::new();
    let mut seen = 0;
    for (path, block) in sh_blocks() {
        for line in block.replace("\\\n", " ").lines() {
            let line = line.split(" # ").next().unwrap_or_default().trim();
            if line.starts_with('#') {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            let Some(i) = (0..words.len())
                .find(|&i| words[i] == "dedyn-update" && (i == 0 || words[i - 1] != "-u"))
            else {
                continue;
            };
            let mut rest = &words[i + 1..];
            if rest.first() == Some(&"--config") {
                rest = rest.get(2..).unwrap_or_default();
            }
            let Some(command) = rest.first() else {
                continue;
            };
            if !SERVICE_USER_COMMANDS.contains(command) {
                continue;
            }
            seen += 1;
            let as_user = line.starts_with("runuser -u dedyn-update ")
                || line.starts_with("sudo -u dedyn-update ");
            let config = line.contains("--config /etc/dedyn-update/config.toml ");
            if !(as_user && config) {
                problems.push(format!("{}: {line}", path.display()));
            }
        }
    }
    assert!(seen >= 5, "only {seen} admin commands found");
    assert!(
        problems.is_empty(),
        "admin commands not as the service user with --config /etc/dedyn-update/config.toml:\n{}",
        problems.join("\n")
    );
}

/// Was: `# comments` after the line-continuation backslashes of the
/// token-policies block: the shell ended the command there ("--expires-in:
/// command not found"). No `sh` block has a backslash followed by anything.
#[test]
fn no_sh_block_continues_a_line_into_a_comment() {
    for (path, block) in sh_blocks() {
        for line in block.lines() {
            let trimmed = line.trim_end();
            let bad = trimmed.contains("\\ ") && trimmed.contains(" #")
                || (line.ends_with(' ') && trimmed.ends_with('\\'));
            assert!(!bad, "{}: {line}", path.display());
        }
    }
}

/// Every crate under `[dependencies]` has its line, with why, in the README's
/// Dependencies section (the design card: a crate earns its place there).
#[test]
fn every_dependency_is_named_in_the_readme_with_why() {
    let cargo = std::fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).expect("Cargo.toml");
    let crates: Vec<&str> = cargo
        .split("\n[dependencies]\n")
        .nth(1)
        .expect("a [dependencies] table")
        .lines()
        .take_while(|l| !l.starts_with('['))
        .filter_map(|l| l.split_once('=').map(|(name, _)| name.trim()))
        .filter(|name| !name.is_empty() && !name.starts_with('#'))
        .collect();
    assert!(crates.len() >= 6, "{crates:?}");
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).expect("README.md");
    let section = readme
        .split("\n## Dependencies\n")
        .nth(1)
        .expect("README.md has a Dependencies section");
    let section = section.split("\n## ").next().unwrap_or(section);
    for name in crates {
        let row = section
            .lines()
            .find(|l| {
                l.starts_with("| ")
                    && l.split('|').nth(1).is_some_and(|first| {
                        first
                            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                            .any(|w| w == name)
                    })
            })
            .unwrap_or_else(|| panic!("README's Dependencies section has no row for {name}"));
        let why = row.split('|').nth(2).unwrap_or("").trim();
        assert!(why.len() > 10, "{name}: say why it is there: {row}");
    }
}
