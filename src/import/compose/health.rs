//! `healthcheck` to `HEALTH_CMD` and its timing; secrets it interpolates are read from
//! the container's environment.

use super::command::{exec_form, join_words, mentions_secret};
use super::text::{pieces, Piece};
use super::yaml::Node;
use super::{is_key, is_secret_name, Import, ServiceDraft};

impl Import<'_> {
    pub(super) fn health(&mut self, service: &mut ServiceDraft, node: &Node) {
        let input = service.input.clone();
        let Some(health) = node.get("healthcheck") else {
            return;
        };
        if matches!(health.get("disable"), Some(Node::Bool(true))) {
            self.finding(
                Some(&input),
                "healthcheck.disable",
                "stack cannot switch off the image's health check",
            );
            return;
        }
        if let Node::Map(keys) = health {
            if keys
                .iter()
                .all(|(k, v)| k == "disable" && matches!(v, Node::Bool(false)))
            {
                self.note(
                    Some(&input),
                    "healthcheck",
                    "`disable: false` changes nothing: the image's own health check applies",
                );
                return;
            }
        }
        let command = match self.health_test(&input, health.get("test")) {
            Some(HealthTest::Exec(words)) => {
                // Exec form stays exec form: no shell in the container needed.
                let argv: Vec<String> = words.iter().map(|w| self.template(w)).collect();
                service.set("HEALTH_CMD", &exec_form(&argv));
                self.health_timing(service, health);
                return;
            }
            Some(HealthTest::Shell(command)) => Some(command),
            None => None,
        };
        let Some(command) = command else { return };
        let command = self.shell_secrets(service, &command);
        let command = self.template(&command);
        if command.contains(['\n', '\r']) {
            // A multi-line shell command: Docker runs `CMD-SHELL` as `/bin/sh -c`, which
            // the exec form says exactly, line breaks included.
            let argv = ["/bin/sh".to_string(), "-c".to_string(), command];
            service.set("HEALTH_CMD", &exec_form(&argv));
        } else {
            service.set("HEALTH_CMD", &command);
        }
        self.health_timing(service, health);
    }

    /// A health check's `test`: exec words (after `CMD`) or a shell command; `None`
    /// (listed) when it has none stack can carry.
    fn health_test(&mut self, input: &str, test: Option<&Node>) -> Option<HealthTest> {
        let Some(test) = test else {
            self.finding(
                Some(input),
                "healthcheck",
                "a health check without `test` tunes the image's own; stack needs the command",
            );
            return None;
        };
        let Node::Seq(items) = test else {
            return test.scalar().map(HealthTest::Shell);
        };
        let words: Vec<String> = items.iter().filter_map(Node::scalar).collect();
        match words.first().map(String::as_str) {
            Some("CMD") if words.len() > 1 && !words.iter().any(|w| mentions_secret(w)) => {
                Some(HealthTest::Exec(words[1..].to_vec()))
            }
            Some("CMD") => Some(HealthTest::Shell(join_words(&words[1..]))),
            // Docker runs `/bin/sh -c` with every word after `CMD-SHELL` (moby's probe
            // appends them all): the first is the command, the others its `$0`, `$1`…,
            // which only the exec form can say.
            Some("CMD-SHELL") if words.len() > 2 && !words.iter().any(|w| mentions_secret(w)) => {
                let shell = ["/bin/sh".to_string(), "-c".to_string()];
                Some(HealthTest::Exec(
                    shell
                        .into_iter()
                        .chain(words[1..].iter().cloned())
                        .collect(),
                ))
            }
            Some("CMD-SHELL") => words.get(1).cloned().map(HealthTest::Shell),
            Some("NONE") => {
                self.finding(
                    Some(input),
                    "healthcheck.test",
                    "stack cannot switch off the image's health check",
                );
                None
            }
            _ => {
                self.finding(
                    Some(input),
                    "healthcheck.test",
                    "a test list starts with `CMD`, `CMD-SHELL` or `NONE`",
                );
                None
            }
        }
    }

    /// A health check's timing (Docker's defaults where the file has none: stack's own
    /// are shorter) and the keys stack has no attribute for.
    fn health_timing(&mut self, service: &mut ServiceDraft, health: &Node) {
        let input = service.input.clone();
        for (key, attr, default) in [
            ("interval", "HEALTH_INTERVAL", "30s"),
            ("timeout", "HEALTH_TIMEOUT", "30s"),
            ("retries", "HEALTH_RETRIES", "3"),
            ("start_period", "HEALTH_START_PERIOD", "0s"),
        ] {
            let mut value = health
                .get(key)
                .and_then(Node::scalar)
                .unwrap_or_else(|| default.into());
            if is_zero(&value) {
                // The engine reads 0 as its default (moby's `defaultProbe*`).
                self.note(
                    Some(&input),
                    &format!("healthcheck.{key}"),
                    format!("0 means the engine's default, {default}: written as that"),
                );
                value = default.into();
            }
            let value = self.template(&value);
            service.set(attr, &value);
        }
        if let Node::Map(entries) = health {
            for (key, _) in entries {
                if ![
                    "test",
                    "interval",
                    "timeout",
                    "retries",
                    "start_period",
                    "disable",
                ]
                .contains(&key.as_str())
                {
                    let why = if key == "start_interval" {
                        "stack has no attribute for it: during the start period the check runs \
                         every `interval`, as on an engine before Docker 25"
                    } else {
                        "stack has no attribute for it"
                    };
                    self.finding(Some(&input), &format!("healthcheck.{key}"), why);
                }
            }
        }
    }

    /// A health check runs in a shell with the container's environment: a secret it
    /// interpolates becomes `$NAME`, expanded there, and the service gets `ENV_NAME`.
    fn shell_secrets(&mut self, service: &mut ServiceDraft, command: &str) -> String {
        let mut out = Vec::new();
        for piece in pieces(command) {
            match piece {
                Piece::Var { name, rest, .. } if rest.is_empty() && is_secret_name(&name) => {
                    let key = self.var(&name);
                    if self.secrets.contains_key(&key) || self.dotenv.contains_key(&name) {
                        self.secrets.entry(key.clone()).or_insert(None);
                    } else {
                        self.unset_secrets.insert(key.clone());
                    }
                    let attr = format!("ENV_{name}");
                    if is_key(&name) && !service.has(&attr) {
                        service.set(&attr, &format!("${{{key}}}"));
                    }
                    self.note(
                        Some(&service.input),
                        "healthcheck.test",
                        format!("the secret `{name}` is read from the container's environment (`${name}`), not written into the check"),
                    );
                    out.push(Piece::Text(format!("$${name}")));
                }
                other => out.push(other),
            }
        }
        super::text::join(&out)
    }
}

/// A health check's command, as the project file takes it.
enum HealthTest {
    /// The words after `CMD`, run without a shell.
    Exec(Vec<String>),
    /// A command for `/bin/sh -c`.
    Shell(String),
}

/// `0`, `0s`, `0ms`: a health timing the engine replaces by its default.
fn is_zero(value: &str) -> bool {
    let digits = value
        .trim()
        .trim_end_matches(|c: char| c.is_ascii_alphabetic());
    !digits.is_empty() && digits.chars().all(|c| c == '0' || c == '.')
}

pub(super) fn has_health(service: &Node) -> bool {
    let Some(health) = service.get("healthcheck") else {
        return false;
    };
    if matches!(health.get("disable"), Some(Node::Bool(true))) {
        return false;
    }
    match health.get("test") {
        Some(Node::Seq(items)) => items
            .first()
            .and_then(Node::scalar)
            .is_some_and(|first| first == "CMD" || first == "CMD-SHELL"),
        Some(other) => other.scalar().is_some(),
        None => false,
    }
}
