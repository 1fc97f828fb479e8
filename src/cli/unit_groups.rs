//! The groups dedyn-update.service gets from its drop-ins (`SupplementaryGroups=`,
//! written by `dedyn-update nameserver …`) that a command run by hand lacks.
//!
//! `runuser -u dedyn-update` and `sudo -u dedyn-update` give the user's own
//! groups only, not the unit's: a `check --reload` run that way cannot reach the
//! nameserver's control socket ("Permission denied") although the service can.
//! `check --reload` then says which group is missing and how to run it with it.

use std::path::{Path, PathBuf};

/// Where `dedyn-update nameserver …` writes its drop-in (and an operator's
/// `systemctl edit` writes theirs).
pub const DROPIN_DIR: &str = "/etc/systemd/system/dedyn-update.service.d";

/// `SupplementaryGroups=` of the `[Service]` sections in `text` (a drop-in).
pub fn supplementary_groups(text: &str) -> Vec<String> {
    let mut in_service = false;
    let mut groups = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
        } else if let Some(value) = line.strip_prefix("SupplementaryGroups=") {
            if in_service {
                if value.is_empty() {
                    groups.clear(); // systemd: an empty assignment resets the list
                }
                groups.extend(value.split_whitespace().map(str::to_string));
            }
        }
    }
    groups
}

/// The gid of `group` in an `/etc/group` text.
fn gid_of(group: &str, etc_group: &str) -> Option<u32> {
    etc_group.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 3 && f[0] == group).then(|| f[2].parse().ok())?
    })
}

/// The process's group ids: `Gid:` (real, effective, …) and `Groups:` of a
/// `/proc/self/status` text.
fn own_gids(status: &str) -> Vec<u32> {
    status
        .lines()
        .filter_map(|l| l.strip_prefix("Gid:").or_else(|| l.strip_prefix("Groups:")))
        .flat_map(|v| v.split_whitespace().filter_map(|g| g.parse().ok()))
        .collect()
}

/// Groups the unit's drop-ins give the service that this process does not
/// have, each with the drop-in naming it. Pure: the texts are passed in.
pub fn missing(
    dropins: &[(PathBuf, String)],
    etc_group: &str,
    status: &str,
) -> Vec<(String, PathBuf)> {
    let mine = own_gids(status);
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    for (file, text) in dropins {
        for g in supplementary_groups(text) {
            let had = gid_of(&g, etc_group).is_some_and(|gid| mine.contains(&gid));
            if !had && !out.iter().any(|(o, _)| *o == g) {
                out.push((g, file.clone()));
            }
        }
    }
    out
}

/// The line `check --reload` adds when a reload failed and groups are missing:
/// which group, where it comes from, and the command that has it.
pub fn hint(missing: &[(String, PathBuf)], config: Option<&Path>) -> Option<String> {
    let (_, file) = missing.first()?;
    let names: Vec<&str> = missing.iter().map(|(g, _)| g.as_str()).collect();
    let supp: String = names.iter().map(|g| format!(" -G {g}")).collect();
    let config = config.map_or(String::new(), |c| format!(" --config {}", c.display()));
    Some(format!(
        "the service runs with group {} (SupplementaryGroups= in {}), which this command does not have \
         (runuser and sudo -u give the user's own groups only): as root, run it with the unit's groups: \
         runuser -u dedyn-update -g dedyn-update{supp} -- dedyn-update{config} check --reload",
        names.join(", "),
        file.display(),
    ))
}

/// `missing` for this machine and this process (unreadable files count as empty).
pub fn missing_here() -> Vec<(String, PathBuf)> {
    let mut dropins: Vec<(PathBuf, String)> = std::fs::read_dir(DROPIN_DIR)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "conf"))
                .filter_map(|p| std::fs::read_to_string(&p).ok().map(|t| (p, t)))
                .collect()
        })
        .unwrap_or_default();
    dropins.sort();
    let etc_group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    missing(&dropins, &etc_group, &status)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ETC_GROUP: &str = "root:x:0:\nnsd:x:120:\nknot:x:121:\ndedyn-update:x:990:\n";
    const DROPIN: &str = "[Service]\nSupplementaryGroups=nsd\n";

    fn dropins() -> Vec<(PathBuf, String)> {
        vec![(
            PathBuf::from(format!("{DROPIN_DIR}/nameserver.conf")),
            DROPIN.into(),
        )]
    }

    #[test]
    fn a_command_without_the_drop_ins_group_is_told_which_and_how() {
        // As `runuser -u dedyn-update` runs it: the user's own group only.
        let status = "Name:\tdedyn-update\nGid:\t990\t990\t990\t990\nGroups:\t990 \n";
        let m = missing(&dropins(), ETC_GROUP, status);
        assert_eq!(
            m,
            [(
                "nsd".to_string(),
                PathBuf::from(format!("{DROPIN_DIR}/nameserver.conf"))
            )]
        );
        let h = hint(&m, Some(Path::new("/etc/dedyn-update/config.toml"))).unwrap();
        assert!(h.starts_with("the service runs with group nsd (SupplementaryGroups= in /etc/systemd/system/dedyn-update.service.d/nameserver.conf)"), "{h}");
        assert!(h.ends_with("runuser -u dedyn-update -g dedyn-update -G nsd -- dedyn-update --config /etc/dedyn-update/config.toml check --reload"), "{h}");
    }

    #[test]
    fn the_service_itself_or_root_with_the_group_misses_nothing() {
        let status = "Gid:\t990\t990\t990\t990\nGroups:\t120 990\n";
        assert!(missing(&dropins(), ETC_GROUP, status).is_empty());
        assert_eq!(hint(&[], None), None);
    }

    #[test]
    fn only_the_service_section_counts_and_an_empty_assignment_resets() {
        assert_eq!(
            supplementary_groups(
                "[Unit]\nSupplementaryGroups=x\n[Service]\nSupplementaryGroups=a b\n"
            ),
            ["a", "b"]
        );
        assert_eq!(supplementary_groups("[Service]\nSupplementaryGroups=a\nSupplementaryGroups=\nSupplementaryGroups=knot\n"), ["knot"]);
    }
}
