//! The JSON objects the event command reads (SPEC 15), written by hand: the
//! fields are fixed and few, and a JSON crate would be a dependency for two lines.

use super::outbox::{Change, StaleName};
use crate::os::clock::rfc3339;

/// `{"event": "changed", "name", "type", "old", "new", "via", "client", "at", "serial"}`.
pub fn changed(c: &Change) -> String {
    format!(
        "{{\"event\":\"changed\",\"name\":{},\"type\":{},\"old\":{},\"new\":{},\"via\":{},\"client\":{},\"at\":{},\"serial\":{}}}\n",
        string(&c.name),
        string(&c.rtype),
        list(&c.old),
        list(&c.new),
        string(&c.via),
        c.client.as_deref().map_or("null".into(), string),
        string(&rfc3339(c.at)),
        c.serial
    )
}

/// `history NAME --json`: a change event's fields and the token id, one line.
pub fn history_entry(c: &Change) -> String {
    let event = changed(c);
    let body = event.trim_end().trim_end_matches('}');
    let token = c.token.map_or("null".into(), |t| t.to_string());
    format!("{body},\"token\":{token}}}")
}

/// `{"event": "stale", "name", "last_seen", "at"}`.
pub fn stale(s: &StaleName) -> String {
    format!(
        "{{\"event\":\"stale\",\"name\":{},\"last_seen\":{},\"at\":{}}}\n",
        string(&s.name),
        string(&rfc3339(s.last_seen)),
        string(&rfc3339(s.since))
    )
}

/// A JSON string: quotes, backslashes and control characters escaped.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn list(items: &[String]) -> String {
    let parts: Vec<String> = items.iter().map(|i| string(i)).collect();
    format!("[{}]", parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_has_exactly_the_fields_of_spec_15() {
        let c = Change {
            id: 7,
            at: 0,
            name: "alice.dedyn.example".into(),
            rtype: "A".into(),
            old: vec!["192.0.2.1".into()],
            new: vec!["192.0.2.2".into(), "192.0.2.3".into()],
            via: "http".into(),
            client: Some("203.0.113.5".into()),
            token: Some(3),
            serial: 2026120701,
        };
        assert_eq!(
            changed(&c),
            "{\"event\":\"changed\",\"name\":\"alice.dedyn.example\",\"type\":\"A\",\"old\":[\"192.0.2.1\"],\
             \"new\":[\"192.0.2.2\",\"192.0.2.3\"],\"via\":\"http\",\"client\":\"203.0.113.5\",\
             \"at\":\"1970-01-01T00:00:00Z\",\"serial\":2026120701}\n"
        );
        let cli = Change {
            client: None,
            new: vec![],
            via: "cli".into(),
            ..c
        };
        assert!(changed(&cli).contains("\"new\":[],\"via\":\"cli\",\"client\":null,"));
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(string("a\"b\\c\u{1}"), "\"a\\\"b\\\\c\\u0001\"");
    }
}
