//! Service names: the project's names for the input's services, and the values that
//! still name a renamed service's old host name.

use std::collections::BTreeSet;

use super::yaml::Node;
use super::{pairs_opt, service_name, Import};

impl Import<'_> {
    /// Project names for the input's services: lower-case, `-`, never a preset's or the
    /// proxy's name, never twice.
    pub(super) fn name_services(&mut self, services: &[(String, Node)]) {
        let mut taken = BTreeSet::new();
        for (input, _) in services {
            let base = service_name(input).unwrap_or_else(|| "service".into());
            let mut name = base.clone();
            let reserved = crate::import::is_reserved_service(&name, self.uses_proxy);
            if reserved {
                name = format!("{base}-svc");
            }
            let mut n = 2;
            while taken.contains(&name) {
                name = format!("{base}-{n}");
                n += 1;
            }
            if name != *input {
                let why = if reserved {
                    format!(
                        "the name `{base}` is reserved by stack (a preset or the proxy); other \
                         services must reach it as `{name}`"
                    )
                } else {
                    "service names are lower-case letters, digits and `-`; other services must \
                     reach it by the new name"
                        .to_string()
                };
                self.note(Some(input), "name", format!("renamed to `{name}`: {why}"));
            }
            taken.insert(name.clone());
            self.names.insert(input.clone(), name);
        }
        self.old_names_in_use(services);
    }

    /// A renamed service's old name written as a host in a value (`redis://redis:6379`)
    /// no longer resolves: stack has no network alias to keep it. Each such value is
    /// listed as not carried, with the name to write instead.
    fn old_names_in_use(&mut self, services: &[(String, Node)]) {
        let renamed: Vec<(String, String)> = self
            .names
            .iter()
            .filter(|(a, b)| a != b)
            .map(|(a, b)| (a.clone(), b.clone()))
            .collect();
        if renamed.is_empty() {
            return;
        }
        for (input, node) in services {
            let mut values: Vec<(String, String)> = pairs_opt(node.get("environment"))
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (format!("environment.{k}"), v)))
                .collect();
            for key in ["command", "entrypoint"] {
                match node.get(key) {
                    Some(Node::Seq(items)) => values.extend(
                        items
                            .iter()
                            .filter_map(Node::scalar)
                            .map(|v| (key.to_string(), v)),
                    ),
                    Some(other) => values.extend(other.scalar().map(|v| (key.to_string(), v))),
                    None => {}
                }
            }
            for (key, value) in values {
                for (old, new) in &renamed {
                    if names_host(&value, old) {
                        self.finding(
                            Some(input),
                            &key,
                            format!(
                                "it names the host `{old}`, which is `{new}` in the project \
                                 (stack has no network alias to keep the old name): write `{new}` there"
                            ),
                        );
                    }
                }
            }
        }
    }
}

/// Does `text` name `host` as a host: a word of it (`[A-Za-z0-9_.-]`) equal to it, not
/// a URL scheme (`redis://`).
pub(super) fn names_host(text: &str, host: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    let mut at = 0;
    for part in text.split(|c: char| !word(c)) {
        let end = at + part.len();
        if part == host && !text[end..].starts_with("://") {
            return true;
        }
        at = end + text[end..].chars().next().map_or(0, char::len_utf8);
    }
    false
}
