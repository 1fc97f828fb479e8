//! `config set`: keys of the config file's table sections (`[server]`, `[dns]`, …)
//! changed in its text, every other line (comments included) kept as it was. Pure:
//! text in, text out; the caller validates the result and writes it.
//!
//! The edit is line-based: the key's line in its section is replaced (with its own
//! comment), a missing key goes after the section's last line of content, a missing
//! section at the end; CRLF files stay CRLF. Lines inside multi-line strings are
//! never read as keys or headers, and a key whose value spans lines (a multi-line
//! array or string) is refused: nothing is written.

use super::error::ConfigError;
use super::raw::RawConfig;

/// The sections `config set` addresses: the tables of the file. `[[zone]]` entries
/// are an array and are edited by hand.
pub const SECTIONS: &[&str] = &[
    "server",
    "database",
    "dns",
    "dns_update",
    "rate_limit",
    "limits",
    "standby",
    "history",
    "events",
];

/// `SECTION.KEY` from the command line.
fn split_name(name: &str) -> Result<(&str, &str), ConfigError> {
    let (section, key) = name.split_once('.').ok_or_else(|| {
        ConfigError::one(format!(
            "'{}': name a key as SECTION.KEY, e.g. dns.reload_command",
            name.escape_debug()
        ))
    })?;
    if !SECTIONS.contains(&section) {
        return Err(ConfigError::one(format!(
            "'{}': no section [{}] to set keys in (one of: {}; [[zone]] entries are edited by hand)",
            name.escape_debug(),
            section.escape_debug(),
            SECTIONS.join(", ")
        )));
    }
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err(ConfigError::one(format!(
            "'{}': '{}' is not a key name (lower-case letters and _)",
            name.escape_debug(),
            key.escape_debug()
        )));
    }
    Ok((section, key))
}

/// `value` as a TOML basic string.
pub fn toml_string(value: &str) -> String {
    let mut s = String::with_capacity(value.len() + 2);
    s.push('"');
    for c in value.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if c.is_control() => s.push_str(&format!("\\u{:04X}", c as u32)),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// Whether `value` is one TOML value on one line (`8`, `true`, `["a", "b"]`, `"x"`).
fn is_toml_value(value: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct One {
        #[allow(dead_code)]
        v: serde::de::IgnoredAny,
    }
    !value.contains(['\n', '\r']) && basic_toml::from_str::<One>(&format!("v = {value}")).is_ok()
}

/// The ways `value` can be written, in the order they are tried: as the TOML value
/// it is, if it is one, else (or when the key wants a string) as a string.
fn spellings(value: &str) -> Vec<String> {
    let quoted = toml_string(value);
    if is_toml_value(value) && value != quoted {
        vec![value.to_string(), quoted]
    } else {
        vec![quoted]
    }
}

/// The table a line opens, if it is a table header: `Some(Some("dns"))` for
/// `[dns]`, `Some(None)` for an array-of-tables header such as `[[zone]]`.
fn header(line: &str) -> Option<Option<&str>> {
    let t = line.trim_start();
    if t.starts_with("[[") {
        return Some(None);
    }
    let rest = t.strip_prefix('[')?;
    Some(rest.split_once(']').map(|(name, _)| name.trim()))
}

/// Whether `line` assigns `key` (`key = …`, any spaces around `=`).
fn assigns(line: &str, key: &str) -> bool {
    line.trim_start()
        .strip_prefix(key)
        .is_some_and(|rest| rest.trim_start().starts_with('='))
}

/// The multi-line string delimiter (`"""` or `\'\'\'`) that `line` leaves open, if any.
fn opens_string(line: &str) -> Option<&'static str> {
    ["\"\"\"", "\'\'\'"]
        .into_iter()
        .find(|d| line.matches(d).count() % 2 == 1)
}

/// Whether the value on `line` (after `=`) opens more brackets than it closes: an
/// array that goes on over the next lines. Brackets inside strings do not count.
fn opens_array(line: &str) -> bool {
    let value = line.split_once('=').map_or("", |(_, v)| v);
    let (mut depth, mut quote, mut escaped) = (0i32, None, false);
    for c in value.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' && q == '"' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '"' | '\'' => quote = Some(c),
                '[' => depth += 1,
                ']' => depth -= 1,
                '#' => break,
                _ => {}
            },
        }
    }
    depth > 0
}

/// `text` with `section.key = value` (TOML text): the key's line replaced (its
/// own comment with it), or the line added after the section's last line of
/// content, or the section added at the end. Lines inside multi-line strings are
/// not read as keys or headers; a key whose value spans lines is refused.
fn set_line(text: &str, section: &str, key: &str, value: &str) -> Result<String, ConfigError> {
    let assignment = format!("{key} = {value}");
    let nl = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    let mut current: Option<String> = None; // the table the line is in (None: top level or [[…]])
    let mut insert_at = None; // after the section's last line of content
    let mut in_string: Option<&str> = None; // inside a multi-line string opened by this
    for (i, line) in lines.iter_mut().enumerate() {
        let in_section = current.as_deref() == Some(section);
        if let Some(d) = in_string {
            if line.matches(d).count() % 2 == 1 {
                in_string = None;
                if in_section {
                    insert_at = Some(i);
                }
            }
            continue;
        }
        if let Some(h) = header(line) {
            current = h.map(str::to_string);
            if current.as_deref() == Some(section) && insert_at.is_none() {
                insert_at = Some(i);
            }
            continue;
        }
        if in_section && assigns(line, key) {
            if opens_string(line).is_some() || opens_array(line) {
                return Err(ConfigError::one(format!(
                    "{section}.{key}: its value spans several lines; edit it by hand"
                )));
            }
            let indent = &line[..line.len() - line.trim_start().len()];
            let eol = &line[line.trim_end_matches(['\r', '\n']).len()..];
            *line = format!("{indent}{assignment}{eol}");
            return Ok(lines.concat());
        }
        let t = line.trim_start();
        if in_section && !t.is_empty() && !t.starts_with('#') {
            insert_at = Some(i);
        }
        in_string = opens_string(line);
    }
    let mut out = match insert_at {
        Some(i) => {
            if !lines[i].ends_with('\n') {
                lines[i].push_str(nl);
            }
            lines.insert(i + 1, format!("{assignment}{nl}"));
            return Ok(lines.concat());
        }
        None => lines.concat(),
    };
    if !out.is_empty() && !out.ends_with('\n') {
        out.push_str(nl);
    }
    if !out.is_empty() {
        out.push_str(nl);
    }
    out.push_str(&format!("[{section}]{nl}{assignment}{nl}"));
    Ok(out)
}

/// `text` with each `(SECTION.KEY, value)` set, in order. A value that is a TOML
/// value of the key's type is written as it is (`8`, `true`, `["0.0.0.0:80"]`),
/// anything else as a string. Checks that the result parses and every key has its
/// type; what the keys mean (`validate`) is the caller's to check, with the file's path.
/// Returns the new text and each assignment as written (`SECTION.KEY = VALUE`).
pub fn set(
    text: &str,
    assignments: &[(String, String)],
) -> Result<(String, Vec<String>), ConfigError> {
    let mut text = text.to_string();
    let mut written = Vec::new();
    for (name, value) in assignments {
        let (section, key) = split_name(name)?;
        let mut last_error = None;
        let mut chosen = None;
        for spelling in spellings(value) {
            let candidate = set_line(&text, section, key, &spelling)?;
            match basic_toml::from_str::<RawConfig>(&candidate) {
                Ok(_) => {
                    written.push(format!("{name} = {spelling}"));
                    chosen = Some(candidate);
                    break;
                }
                Err(e) => last_error = Some(e),
            }
        }
        text = match (chosen, last_error) {
            (Some(t), _) => t,
            (None, Some(e)) => {
                // A file that does not load as it is: say so, not blame the value.
                return Err(match basic_toml::from_str::<RawConfig>(&text) {
                    Err(before) => ConfigError::one(format!(
                        "the file does not load as it is, so {name} cannot be set: {before}"
                    )),
                    Ok(_) => ConfigError::one(format!("{name}: {e}")),
                });
            }
            (None, None) => unreachable!("spellings() gives at least one"),
        };
    }
    Ok((text, written))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set1(text: &str, name: &str, value: &str) -> Result<String, String> {
        set(text, &[(name.into(), value.into())])
            .map(|(text, _)| text)
            .map_err(|e| e.to_string())
    }

    const PACKAGED: &str = "# comment\n[server]\nhttp_listen = [\"127.0.0.1:8080\"]   # here\n\n\
                            [dns]\nreload_command = \"\"          # empty: only write\n\n\
                            [[zone]]\nname = \"dedyn.example\"\n";

    #[test]
    fn replaces_the_keys_line_and_keeps_every_other_line() {
        let out = set1(PACKAGED, "dns.reload_command", "rndc reload {zone}").unwrap();
        assert_eq!(
            out,
            PACKAGED.replace(
                "reload_command = \"\"          # empty: only write",
                "reload_command = \"rndc reload {zone}\""
            )
        );
    }

    #[test]
    fn a_missing_key_goes_after_its_sections_last_key() {
        let out = set1(PACKAGED, "dns.verify_server", "127.0.0.1:53").unwrap();
        assert!(
            out.contains("only write\nverify_server = \"127.0.0.1:53\"\n\n[[zone]]"),
            "{out}"
        );
        let out = set1("[dns]\n# a comment\n\n[limits]\n", "dns.ttl", "30").unwrap();
        assert_eq!(out, "[dns]\nttl = 30\n# a comment\n\n[limits]\n");
    }

    #[test]
    fn a_missing_section_is_added_at_the_end_after_array_tables() {
        let out = set1(PACKAGED, "limits.domains_per_user", "5").unwrap();
        assert!(out.ends_with("name = \"dedyn.example\"\n\n[limits]\ndomains_per_user = 5\n"));
        // and the key stays in its section, not in the [[zone]] entry above it
        let empty = set1("", "dns.verify_server", "127.0.0.1:53").unwrap();
        assert_eq!(empty, "[dns]\nverify_server = \"127.0.0.1:53\"\n");
    }

    #[test]
    fn a_key_of_the_same_name_in_another_section_or_a_comment_is_left_alone() {
        let text = "[limits]\nnames_per_domain = 1\n[dns]\n# names_per_domain = 5\n";
        let out = set1(text, "limits.records_per_name", "30").unwrap();
        assert_eq!(out, text.replace("= 1\n", "= 1\nrecords_per_name = 30\n"));
        let text = "[limits]\nrecords_per_name = 1\n[dns]\n# ttl = 5\n";
        let out = set1(text, "dns.ttl", "30").unwrap();
        assert_eq!(
            out,
            "[limits]\nrecords_per_name = 1\n[dns]\nttl = 30\n# ttl = 5\n"
        );
    }

    #[test]
    fn values_are_toml_when_the_key_takes_them_else_strings() {
        let out = set1("", "server.workers", "8").unwrap();
        assert!(out.contains("workers = 8\n"), "{out}");
        let out = set1("", "server.http_listen", "[\"0.0.0.0:80\", \"[::]:80\"]").unwrap();
        assert!(
            out.contains("http_listen = [\"0.0.0.0:80\", \"[::]:80\"]\n"),
            "{out}"
        );
        // `true` is a TOML value, but reload_command takes a string
        let out = set1("", "dns.reload_command", "true").unwrap();
        assert!(out.contains("reload_command = \"true\"\n"), "{out}");
        let out = set1("", "dns.reload_command", "a \"quoted\" \\ \u{7}").unwrap();
        assert!(
            out.contains(r#"reload_command = "a \"quoted\" \\ \u0007""#),
            "{out}"
        );
        let out = set1("", "dns.verify_server", "").unwrap();
        assert!(out.contains("verify_server = \"\"\n"), "{out}");
    }

    #[test]
    fn refusals_name_the_key_and_the_problem() {
        let e = set1(PACKAGED, "server.workers", "many").unwrap_err();
        assert!(e.starts_with("server.workers: invalid type: string"), "{e}");
        let e = set1(PACKAGED, "dns.no_such_key", "x").unwrap_err();
        assert!(e.contains("unknown field `no_such_key`"), "{e}");
        let e = set1(PACKAGED, "zone.name", "x").unwrap_err();
        assert!(e.contains("no section [zone]"), "{e}");
        let e = set1(PACKAGED, "reload_command", "x").unwrap_err();
        assert!(e.contains("SECTION.KEY"), "{e}");
        let e = set1(PACKAGED, "dns.Reload", "x").unwrap_err();
        assert!(e.contains("not a key name"), "{e}");
    }

    #[test]
    fn a_multi_line_value_is_refused_not_half_replaced() {
        let text = "[server]\nhttp_listen = [\n  \"127.0.0.1:8080\",\n]\n";
        let e = set1(text, "server.http_listen", "[\"0.0.0.0:80\"]").unwrap_err();
        assert!(e.starts_with("server.http_listen: "), "{e}");
    }

    #[test]
    fn lines_inside_multi_line_strings_are_not_keys_and_multi_line_values_are_refused() {
        let text = "[dns]\nreload_command = \"\"\"\nttl = 1\n[server]\n\"\"\"\n";
        let out = set1(text, "dns.ttl", "7").unwrap();
        assert_eq!(out, format!("{text}ttl = 7\n"));
        let e = set1(text, "dns.reload_command", "x").unwrap_err();
        assert!(e.contains("spans several lines"), "{e}");
        let text = "[server]\nhttp_listen = [ # the addresses\n  \"127.0.0.1:8080\",\n]\n";
        let e = set1(text, "server.http_listen", "[\"0.0.0.0:80\"]").unwrap_err();
        assert!(e.contains("spans several lines"), "{e}");
        // brackets inside a string are not an open array
        let text = "[server]\nhttp_listen = [\"[::]:80\"]\n";
        let out = set1(text, "server.http_listen", "[\"0.0.0.0:80\"]").unwrap();
        assert_eq!(out, "[server]\nhttp_listen = [\"0.0.0.0:80\"]\n");
    }

    #[test]
    fn crlf_files_stay_crlf() {
        let text = "[dns]\r\nttl = 60\r\n";
        let out = set1(text, "dns.ttl", "30").unwrap();
        assert_eq!(out, "[dns]\r\nttl = 30\r\n");
        let out = set1(text, "dns.verify_server", "127.0.0.1:53").unwrap();
        assert_eq!(
            out,
            "[dns]\r\nttl = 60\r\nverify_server = \"127.0.0.1:53\"\r\n"
        );
    }

    #[test]
    fn a_file_that_does_not_load_is_named_as_the_problem() {
        let text = "[[zone]]\nname = \"a.example\"\nnameservers = \"ns1.example.\"\n";
        let e = set1(text, "server.http_listen", "[\"0.0.0.0:80\"]").unwrap_err();
        assert!(
            e.starts_with("the file does not load as it is, so server.http_listen cannot be set")
                && e.contains("nameservers"),
            "{e}"
        );
    }

    #[test]
    fn several_keys_in_one_call() {
        let (out, written) = set(
            PACKAGED,
            &[
                (
                    "dns.reload_command".into(),
                    "nsd-control reload {zone}".into(),
                ),
                ("dns.verify_server".into(), "127.0.0.1:53".into()),
                ("server.workers".into(), "4".into()),
            ],
        )
        .unwrap();
        assert!(out.contains(
            "[dns]\nreload_command = \"nsd-control reload {zone}\"\nverify_server = \"127.0.0.1:53\"\n"
        ));
        assert_eq!(
            written,
            [
                "dns.reload_command = \"nsd-control reload {zone}\"",
                "dns.verify_server = \"127.0.0.1:53\"",
                "server.workers = 4"
            ]
        );
    }
}
