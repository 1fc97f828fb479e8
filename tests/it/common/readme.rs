//! The documentation as the tests read it: README.md and every docs/*.md, and the
//! fenced block an HTML comment marker names, so that what a user copies is what
//! a test runs.

use std::path::{Path, PathBuf};

/// README.md, then docs/*.md in name order: the files a marker may live in.
pub fn files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .map(|dir| {
            dir.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "md"))
                .collect()
        })
        .unwrap_or_default();
    docs.sort();
    let mut all = vec![root.join("README.md")];
    all.extend(docs);
    all
}

/// Every documentation file's text, each with its path.
pub fn texts() -> Vec<(PathBuf, String)> {
    files()
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
            (p, text)
        })
        .collect()
}

/// All documentation in one string (for "the docs say X" checks).
pub fn all_text() -> String {
    texts()
        .into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The fenced block right after `<!-- recipe: NAME -->`.
pub fn recipe(name: &str) -> String {
    block_after(&format!("recipe: {name}"))
}

/// The fenced block right after the line `<!-- MARKER -->` (e.g. `output of:
/// dedyn-update nameserver nsd`), each line ending in a newline. The marker must
/// occur exactly once across README.md and docs/*.md.
pub fn block_after(marker: &str) -> String {
    let marker = format!("<!-- {marker} -->");
    let found: Vec<(PathBuf, String)> = texts()
        .into_iter()
        .filter(|(_, t)| t.lines().any(|l| l == marker))
        .collect();
    let count: usize = found
        .iter()
        .map(|(_, t)| t.lines().filter(|l| *l == marker).count())
        .sum();
    assert_eq!(
        count,
        1,
        "{marker} must occur exactly once in README.md and docs/*.md, found in {:?}",
        found.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    let text = &found[0].1;
    let mut lines = text.lines().skip_while(|l| *l != marker).skip(1);
    let fence = lines.next().unwrap_or_default();
    assert!(
        fence.starts_with("```"),
        "{marker} is not followed by a code block"
    );
    let body: Vec<&str> = lines.take_while(|l| !l.starts_with("```")).collect();
    body.join("\n") + "\n"
}

/// The arguments of the one `dedyn-update` command in `block` (a recipe), as the
/// CLI gets them: lines joined at a trailing `\`, words split at whitespace (the
/// recipes quote nothing), everything up to the program name and its `--config
/// FILE` dropped (`sudo -u dedyn-update`, the installed config's path).
pub fn cli_args(block: &str) -> Vec<String> {
    let joined = block.replace("\\\n", " ");
    let all: Vec<&str> = joined.split_whitespace().collect();
    // The program, not `sudo -u dedyn-update`'s user.
    let program = (0..all.len())
        .find(|&i| all[i] == "dedyn-update" && (i == 0 || all[i - 1] != "-u"))
        .unwrap_or_else(|| panic!("no dedyn-update command in {block}"));
    let mut words = all[program + 1..].iter().copied().peekable();
    if words.peek() == Some(&"--config") {
        words.nth(1);
    }
    words.map(str::to_string).collect()
}
