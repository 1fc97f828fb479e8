//! `dedyn-update man 8|5` (not in `--help`): the manual pages dedyn-update(8) and
//! dedyn-update.toml(5) as roff, made from the texts `--help` prints and from the
//! configuration reference, docs/configuration.md (whose table tests/it/docs.rs holds
//! to `Config::defaults()`), so that none of the three can drift from the others.
//! The package ships the pages as generated into data/man/ (tests/it/packages/man_pages.rs checks
//! they are current and that `man -l` renders them).

use super::args::{print_lines, usage, Out};

/// docs/configuration.md, compiled in: the source of dedyn-update.toml(5).
const CONFIGURATION_MD: &str = include_str!("../../docs/configuration.md");

/// Every command, in `--help`'s order: each has a `COMMAND --help` text.
const COMMANDS: &[&str] = &[
    "serve",
    "user",
    "domain",
    "token",
    "import",
    "records",
    "acme",
    "zone",
    "check",
    "status",
    "explain",
    "nameserver",
    "config",
    "backup",
    "restore",
];

pub fn run(args: &[String]) -> Out {
    let page = match args {
        [s] if s == "8" => page8(),
        [s] if s == "5" => page5(),
        _ => return Err(usage("usage: dedyn-update man 8|5")),
    };
    print_lines([page.trim_end().to_string()]);
    Ok(())
}

/// Text for roff: backslashes escaped, `-` a real minus (options), and a line
/// that would start with `.` or `'` (a request) protected.
fn roff(text: &str) -> String {
    text.lines()
        .map(|l| {
            let l = l.replace('\\', "\\e").replace('-', "\\-");
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Markdown inline text for roff: `code` in bold, links as their text.
fn inline(md: &str) -> String {
    let mut out = String::new();
    for (i, part) in md.split('`').enumerate() {
        let part = roff(part);
        if i % 2 == 1 {
            out.push_str(&format!("\\fB{part}\\fR"));
        } else {
            // [text](target) → text
            let mut rest = part.as_str();
            while let Some(open) = rest.find('[') {
                match rest[open..].find("](").and_then(|m| {
                    let close = rest[open + m..].find(')')?;
                    Some((open + m, open + m + close))
                }) {
                    Some((mid, close)) => {
                        out.push_str(&rest[..open]);
                        out.push_str(&rest[open + 1..mid]);
                        rest = &rest[close + 1..];
                    }
                    None => break,
                }
            }
            out.push_str(rest);
        }
    }
    out.replace("**", "")
}

fn header(name: &str, section: u8, title: &str) -> String {
    format!(
        ".TH {} {section} \"\" \"dedyn-update {}\" \"{title}\"\n.SH NAME\n{} \\- ",
        name.to_uppercase(),
        env!("CARGO_PKG_VERSION"),
        roff(name)
    )
}

/// dedyn-update(8): `--help`, then each command's `COMMAND --help`.
pub fn page8() -> String {
    let mut p = header("dedyn-update", 8, "System Administration");
    p.push_str("self-hosted dynDNS update server (deSEC's IP update API)\n");
    p.push_str(".SH SYNOPSIS\n.B dedyn-update\n[\\fB\\-\\-config\\fR \\fIFILE\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]\n");
    p.push_str(".SH DESCRIPTION\n.nf\n");
    // --help after its usage line (the NAME and SYNOPSIS above), without its
    // last line (COMMANDS below has each command's help).
    let help: Vec<&str> = super::HELP.lines().collect();
    let from = help
        .iter()
        .position(|l| l.starts_with("usage:"))
        .map_or(1, |i| i + 1);
    p.push_str(&roff(&help[from..help.len() - 1].join("\n")));
    p.push_str("\n.fi\n.SH COMMANDS\n");
    for cmd in COMMANDS {
        let text = super::command_help(cmd).unwrap_or_default();
        // The usage lines (a second one is indented under the first), then the rest.
        let lines: Vec<&str> = text.lines().collect();
        let usage_lines = 1 + lines[1..]
            .iter()
            .take_while(|l| l.trim_start().starts_with("dedyn-update "))
            .count();
        let usage: Vec<&str> = lines[..usage_lines]
            .iter()
            .map(|l| l.trim_start_matches("usage: ").trim_start())
            .collect();
        p.push_str(&format!(
            ".SS {}\n.nf\n{}\n",
            roff(cmd),
            roff(&usage.join("\n"))
        ));
        if usage_lines < lines.len() {
            p.push_str(&format!("\n{}\n", roff(&lines[usage_lines..].join("\n"))));
        }
        p.push_str(".fi\n");
    }
    p.push_str(
        ".SH FILES\n.TP\n/etc/dedyn\\-update/config.toml\nthe configuration, see \\fBdedyn\\-update.toml\\fR(5)\n\
         .TP\n/var/lib/dedyn\\-update\nthe database and the zone files\n\
         .TP\n/usr/share/doc/dedyn\\-update/\nREADME.md and docs/: installation, nameservers, clients, operations\n\
         .SH ENVIRONMENT\n.TP\nDEDYN_UPDATE_CONFIG\nthe config file when \\fB\\-\\-config\\fR is not given\n\
         .TP\nRUST_LOG\nlog level (default info)\n\
         .SH EXIT STATUS\n0 on success; 1 when a command failed (one line on stderr says why, and nothing was changed); 2 for a usage error.\n\
         .SH SEE ALSO\n\\fBdedyn\\-update.toml\\fR(5), \\fBnsd\\fR(8), \\fBknotd\\fR(8), \\fBnamed\\fR(8)\n",
    );
    p
}

/// dedyn-update.toml(5): docs/configuration.md, its prose as paragraphs and its
/// table as one tagged paragraph per key, grouped by section.
pub fn page5() -> String {
    let mut p = header("dedyn-update.toml", 5, "File Formats");
    p.push_str("configuration file of \\fBdedyn\\-update\\fR(8)\n.SH SYNOPSIS\n/etc/dedyn\\-update/config.toml\n.SH DESCRIPTION\n");
    let mut section = String::new();
    let mut paragraph = String::new();
    let flush = |p: &mut String, paragraph: &mut String| {
        if !paragraph.trim().is_empty() {
            p.push_str(&format!(".PP\n{}\n", inline(paragraph.trim())));
        }
        paragraph.clear();
    };
    for line in CONFIGURATION_MD.lines() {
        if line.starts_with("# ") || line.starts_with("|---") || line.starts_with("| key ") {
            continue;
        }
        if let Some(row) = line.strip_prefix("| `") {
            flush(&mut p, &mut paragraph);
            let cells: Vec<&str> = row.split(" | ").collect();
            let key = cells[0].trim_end_matches('`');
            let (sect, name) = match key.strip_prefix("[[zone]] ") {
                Some(k) => ("[[zone]]".to_string(), k),
                None => match key.split_once('.') {
                    Some((s, k)) => (format!("[{s}]"), k),
                    None => (String::new(), key),
                },
            };
            if sect != section {
                p.push_str(&format!(".SH {}\n", roff(&sect)));
                section = sect;
            }
            let default = cells.get(1).copied().unwrap_or_default();
            let meaning = cells.get(2).map_or("", |m| m.trim_end_matches(" |"));
            p.push_str(&format!(
                ".TP\n\\fB{}\\fR (default: {})\n{}\n",
                roff(name),
                inline(default),
                inline(meaning)
            ));
        } else if line.trim().is_empty() {
            flush(&mut p, &mut paragraph);
        } else {
            if !section.is_empty() {
                p.push_str(".SH NOTES\n");
                section.clear();
            }
            // One line per paragraph: roff fills it, and no code span is cut.
            paragraph.push_str(line.trim());
            paragraph.push(' ');
        }
    }
    flush(&mut p, &mut paragraph);
    p.push_str(".SH SEE ALSO\n\\fBdedyn\\-update\\fR(8)\n");
    p
}
