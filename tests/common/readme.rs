//! The README as the tests read it: the fenced block an HTML comment marker names,
//! so that what a user copies is what a test runs.

/// The fenced block right after `<!-- recipe: NAME -->` in README.md.
pub fn recipe(name: &str) -> String {
    block_after(&format!("recipe: {name}"))
}

/// The fenced block right after the line `<!-- MARKER -->` in README.md (e.g.
/// `output of: dedyn-update nameserver nsd`), each line ending in a newline.
pub fn block_after(marker: &str) -> String {
    let readme = include_str!("../../README.md");
    let marker = format!("<!-- {marker} -->");
    let start = readme
        .find(&marker)
        .unwrap_or_else(|| panic!("README.md has no {marker}"));
    let mut lines = readme[start + marker.len()..].lines().skip(1);
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
