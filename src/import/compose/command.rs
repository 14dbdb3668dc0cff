//! `command` and `entrypoint` as shell words or the exec form; the word helpers the
//! health check shares.

use super::text::references;
use super::yaml::Node;
use super::{is_secret_name, Import, ServiceDraft};

impl Import<'_> {
    /// `entrypoint` to `ENTRYPOINT`, `command` to `COMMAND`.
    pub(super) fn command(&mut self, service: &mut ServiceDraft, node: &Node) {
        for (key, attr) in [("entrypoint", "ENTRYPOINT"), ("command", "COMMAND")] {
            if let Some(value) = node.get(key) {
                if let Some(words) = self.words(&service.input, key, value) {
                    service.set(attr, &words);
                }
            }
        }
    }

    /// A command or entrypoint as shell words.
    fn words(&mut self, input: &str, key: &str, value: &Node) -> Option<String> {
        let empty = match value {
            Node::Seq(items) => items.is_empty(),
            other => other.scalar().is_some_and(|text| text.trim().is_empty()),
        };
        if empty {
            self.empty_words(input, key);
            return None;
        }
        let texts = match value {
            Node::Seq(items) => items.iter().filter_map(Node::scalar).collect(),
            other => other.scalar().into_iter().collect::<Vec<_>>(),
        };
        let secrets: Vec<String> = texts
            .iter()
            .flat_map(|t| references(t))
            .filter(|name| is_secret_name(name))
            .collect();
        if let Some(name) = secrets.first() {
            self.finding(
                Some(input),
                key,
                format!(
                    "it interpolates the secret `{name}`, which stack never writes into docker-compose.yml; \
                     pass it in the environment and let the program (or `sh -c`) read it"
                ),
            );
            return None;
        }
        match value {
            Node::Seq(items) => {
                let words: Vec<String> = items.iter().filter_map(Node::scalar).collect();
                if words.len() != items.len() {
                    self.finding(Some(input), key, "a list item that is not a string");
                    return None;
                }
                let words: Vec<String> = words.iter().map(|w| self.template(w)).collect();
                Some(argv_value(&words))
            }
            Node::Null => None,
            other => other.scalar().map(|text| {
                let text = self.template(&text);
                // A block scalar (`|`, `>`): Compose splits it into words like a shell,
                // line breaks being spaces outside quotes; keep the words exactly.
                match shell_words::split(&text) {
                    Ok(words) if text.contains(['\n', '\r']) && !words.is_empty() => {
                        argv_value(&words)
                    }
                    _ => text,
                }
            }),
        }
    }
}

impl Import<'_> {
    /// `command: []` or `entrypoint: ''`: Compose's "override to empty".
    fn empty_words(&mut self, input: &str, key: &str) {
        if key == "command" {
            // moby fills an empty command from the image's unless an entrypoint is given:
            // without `COMMAND` the container runs what Compose's runs.
            self.note(
                Some(input),
                key,
                "empty: the engine runs the image's command when a service sets neither \
                 command nor entrypoint, so it is left out (the same container)",
            );
        } else {
            self.finding(
                Some(input),
                key,
                "empty (reset the image's entrypoint): stack cannot write an empty entrypoint; \
                 write the whole command line as `ENTRYPOINT`",
            );
        }
    }
}

/// A JSON array of strings: the project file's exec form of a command (each word
/// exactly, line breaks included).
pub(super) fn exec_form(words: &[String]) -> String {
    serde_json::to_string(words).unwrap_or_default()
}

/// A command's words for the project file: joined with shell quoting where that reads
/// back the same, else the exec form (a word with a line break or control character).
fn argv_value(words: &[String]) -> String {
    if words.iter().any(|w| w.chars().any(char::is_control)) {
        exec_form(words)
    } else {
        shell_words::join(words)
    }
}

/// Does a word interpolate a secret.
pub(super) fn mentions_secret(word: &str) -> bool {
    references(word).iter().any(|name| is_secret_name(name))
}

/// Words joined for a shell: a word that refers to a secret is double-quoted so that the
/// shell expands it (see `shell_secrets`); any other is quoted as needed.
pub(super) fn join_words(words: &[String]) -> String {
    words
        .iter()
        .map(|word| {
            if !references(word).iter().any(|name| is_secret_name(name)) {
                shell_words::quote(word).into_owned()
            } else {
                let escaped = word
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('`', "\\`");
                format!("\"{escaped}\"")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
