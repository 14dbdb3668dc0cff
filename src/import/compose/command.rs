//! `command` and `entrypoint` as shell words or the exec form; the word helpers the
//! health check shares.

use super::text::{pieces, references, Piece};
use super::yaml::Node;
use super::{is_key, is_secret_name, Diagnostic, Import, Result, ServiceDraft};

impl Import<'_> {
    /// `entrypoint` to `ENTRYPOINT`, `command` to `COMMAND`.
    pub(super) fn command(&mut self, service: &mut ServiceDraft, node: &Node) -> Result<()> {
        if self.secret_command(service, node)? {
            return Ok(());
        }
        for (key, attr) in [("entrypoint", "ENTRYPOINT"), ("command", "COMMAND")] {
            if let Some(value) = node.get(key) {
                if let Some(words) = self.words(&service.input, key, value) {
                    service.set(attr, &words);
                }
            }
        }
        Ok(())
    }

    /// A command or entrypoint that interpolates a secret: stack never writes a secret
    /// into docker-compose.yml, so the secret reaches the container in its environment
    /// (`ENV_<NAME>`, set from the override file or the engine, like any secret variable)
    /// and the words run through `/bin/sh -c 'exec …'`, which puts the value where Compose
    /// would have interpolated it. With an entrypoint, the whole line becomes the
    /// entrypoint; with a command alone that starts with an option (`--requirepass $PW`,
    /// which an official image's entrypoint completes with its server), the server is
    /// named first, and an image stack does not know is refused.
    fn secret_command(&mut self, service: &mut ServiceDraft, node: &Node) -> Result<bool> {
        let entrypoint = node.get("entrypoint").and_then(words_of);
        let command = node.get("command").and_then(words_of);
        let all = entrypoint.iter().chain(command.iter()).flatten();
        let Some(secret) = all.flat_map(|w| references(w)).find(|n| is_secret_name(n)) else {
            return Ok(false);
        };
        let input = service.input.clone();
        let (attr, key, mut words) = match (entrypoint, command) {
            (Some(entrypoint), command) => {
                let mut words = entrypoint;
                words.extend(command.unwrap_or_default());
                ("ENTRYPOINT", "entrypoint", words)
            }
            (None, command) => ("COMMAND", "command", command.unwrap_or_default()),
        };
        let image = node.get("image").and_then(Node::scalar).unwrap_or_default();
        let known = server_of(&image).filter(|_| attr == "COMMAND");
        if let Some(server) = known {
            // The official images' entrypoint sets up and drops root for their server
            // only: run it, as the container would have without the shell.
            if words.first().is_some_and(|w| w.starts_with('-')) {
                words.insert(0, server.to_string());
            }
            words.insert(0, "docker-entrypoint.sh".to_string());
        } else if words.first().is_some_and(|w| w.starts_with('-')) {
            return Err(Diagnostic::new(format!(
                "service `{input}`: `{key}` interpolates the secret `{secret}` and starts with an option (`{}`): stack passes secrets to a command through `/bin/sh -c` and cannot tell which program the image `{image}` completes it with",
                words[0]
            ))
            .hint(format!(
                "name the program first in the Compose file (e.g. `command: my-server {} …`), then import again",
                words[0]
            ))
            .into());
        }
        let mut script = String::from("exec");
        for word in &words {
            script.push(' ');
            let quoted = self.shell_word(service, key, word);
            script.push_str(&quoted);
        }
        service.set(attr, &argv_value(&["/bin/sh".into(), "-c".into(), script]));
        Ok(true)
    }

    /// One word for `/bin/sh -c`, in the project file's text (`$$` is a literal `$`): a
    /// word without a secret single-quoted, so the shell changes nothing; a word with one
    /// double-quoted, its `${SECRET}` becoming `$SECRET` (expanded by the shell from
    /// `ENV_SECRET`, which the service gets), every other character kept literal.
    fn shell_word(&mut self, service: &mut ServiceDraft, key: &str, word: &str) -> String {
        if !mentions_secret(word) {
            return shell_words::quote(&self.template(word)).into_owned();
        }
        let mut out = String::from("\"");
        for piece in pieces(word) {
            match piece {
                Piece::Var { name, rest, .. } if is_secret_name(&name) => {
                    let reference = Piece::Var {
                        name: name.clone(),
                        rest,
                        braced: true,
                    };
                    let value = self.template(&super::text::join(&[reference]));
                    let attr = format!("ENV_{name}");
                    if is_key(&name) && !service.has(&attr) {
                        service.set(&attr, &value);
                    }
                    self.note(
                        Some(&service.input),
                        key,
                        format!(
                            "the secret `{name}` is passed in the container's environment and \
                             read by `/bin/sh -c` (`\"${name}\"`), never written into \
                             docker-compose.yml; the image needs `/bin/sh`"
                        ),
                    );
                    out.push_str(&format!("$${{{name}}}"));
                }
                Piece::Var { name, rest, braced } => {
                    let reference = Piece::Var { name, rest, braced };
                    out.push_str(&self.template(&super::text::join(&[reference])));
                }
                Piece::Text(text) => {
                    let escaped = text
                        .replace('\\', "\\\\")
                        .replace('"', "\\\"")
                        .replace('`', "\\`")
                        .replace("$$", "\\$$");
                    out.push_str(&escaped);
                }
            }
        }
        out.push('"');
        out
    }

    /// A command or entrypoint as shell words.
    fn words(&mut self, input: &str, key: &str, value: &Node) -> Option<String> {
        let empty = match value {
            Node::Seq(items) => items.is_empty(),
            other => other.scalar().is_some_and(|text| text.trim().is_empty()),
        };
        if empty && key == "entrypoint" {
            // Compose's reset of the image's entrypoint, which `ENTRYPOINT=[]` says.
            return Some("[]".into());
        }
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
    /// `command: []`: Compose's "override to empty".
    fn empty_words(&mut self, input: &str, key: &str) {
        // moby fills an empty command from the image's unless an entrypoint is given:
        // without `COMMAND` the container runs what Compose's runs.
        self.note(
            Some(input),
            key,
            "empty: the engine runs the image's command when a service sets neither \
             command nor entrypoint, so it is left out (the same container)",
        );
    }
}

/// A command's words as Compose reads them: a list's strings, or a string split like a
/// shell would.
fn words_of(node: &Node) -> Option<Vec<String>> {
    match node {
        Node::Seq(items) => Some(items.iter().filter_map(Node::scalar).collect()),
        Node::Null => None,
        other => shell_words::split(&other.scalar()?).ok(),
    }
}

/// The server an official image's entrypoint runs when the command starts with an
/// option (their `docker-entrypoint.sh`: `if [ "${1#-}" != "$1" ]; then set -- <server> "$@"`).
fn server_of(image: &str) -> Option<&'static str> {
    let name = image.rsplit('/').next().unwrap_or(image);
    let name = name.split([':', '@']).next().unwrap_or(name);
    [
        ("redis", "redis-server"),
        ("valkey", "valkey-server"),
        ("keydb", "keydb-server"),
        ("postgres", "postgres"),
        ("mysql", "mysqld"),
        ("mariadb", "mariadbd"),
        ("mongo", "mongod"),
        ("memcached", "memcached"),
    ]
    .iter()
    .find(|(image, _)| *image == name)
    .map(|(_, server)| *server)
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
