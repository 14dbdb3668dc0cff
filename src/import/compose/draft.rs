//! The typed draft the translators fill: per service its attributes (in the order they
//! were set) and what it does not carry, and the project's settings. Serialised here, at
//! the end, with the project-file writer; nothing reads a written line back.

use super::{OutFile, DEV_SECRETS, PROJECT_FILE};
use crate::project::writer;

/// One service of the project.
pub(super) struct ServiceDraft {
    /// Name in the input.
    pub(super) input: String,
    /// Name in the project.
    pub(super) name: String,
    /// Attribute (`IMAGE`, `ENV_PORT`) → value with its interpolation, in order.
    attributes: Vec<(String, String)>,
    /// Key → reason, for each key not carried.
    not_carried: Vec<(String, String)>,
}

impl ServiceDraft {
    pub(super) fn new(input: &str, name: &str) -> Self {
        ServiceDraft {
            input: input.to_string(),
            name: name.to_string(),
            attributes: Vec::new(),
            not_carried: Vec::new(),
        }
    }

    /// Give `attr` the value `value` (a template: `${VAR}` is interpolation).
    pub(super) fn set(&mut self, attr: &str, value: &str) {
        self.attributes.push((attr.to_string(), value.to_string()));
    }

    /// Take `attr` off the service; its value, if it had one.
    pub(super) fn unset(&mut self, attr: &str) -> Option<String> {
        let at = self.attributes.iter().position(|(a, _)| a == attr)?;
        Some(self.attributes.remove(at).1)
    }

    /// Does the service have `attr` already.
    pub(super) fn has(&self, attr: &str) -> bool {
        self.attributes.iter().any(|(a, _)| a == attr)
    }

    /// The value of `attr`, when set.
    pub(super) fn get(&self, attr: &str) -> Option<&str> {
        let found = self.attributes.iter().find(|(a, _)| a == attr);
        found.map(|(_, v)| v.as_str())
    }

    /// Give `attr` the value `value`, in place when it is set already.
    pub(super) fn replace(&mut self, attr: &str, value: &str) {
        match self.attributes.iter_mut().find(|(a, _)| a == attr) {
            Some((_, old)) => *old = value.to_string(),
            None => self.set(attr, value),
        }
    }

    /// List `key` as not carried, for `reason`.
    pub(super) fn not_carried(&mut self, key: &str, reason: &str) {
        self.not_carried.push((key.to_string(), reason.to_string()));
    }

    /// `SERVICE_<NAME>_`.
    fn prefix(&self) -> String {
        format!(
            "SERVICE_{}",
            self.name.to_ascii_uppercase().replace('-', "_")
        )
    }

    fn write(&self, text: &mut String) {
        text.push_str(&format!("\n# {}\n", self.input));
        let prefix = self.prefix();
        for (attr, value) in &self.attributes {
            text.push_str(&format!("{prefix}_{attr}={}\n", writer::template(value)));
        }
        for (key, reason) in &self.not_carried {
            text.push_str(&not_carried(key, reason));
        }
    }
}

/// The whole project.
pub(super) struct ProjectDraft {
    /// The Compose file's name, for the headers.
    pub(super) source: String,
    pub(super) project: String,
    pub(super) services: Vec<ServiceDraft>,
    /// Behind stack's proxy (`STACK_PROXY=caddy`).
    pub(super) proxy: bool,
    pub(super) tls_email: Option<String>,
    /// `STACK_NETWORKS`, written as it is.
    pub(super) networks: Option<String>,
    /// Names of the secret keys (`STACK_SECRETS`).
    pub(super) secrets: Vec<String>,
    /// Top-level key → reason, for each not carried.
    pub(super) not_carried: Vec<(String, String)>,
    /// Keys from `.env` the file uses → value with its interpolation.
    pub(super) from_dotenv: Vec<(String, String)>,
    /// Secret key → value, for the dev `secrets.env`.
    pub(super) dev_secrets: Vec<(String, String)>,
    /// `STACK_LOG_MAX_SIZE`, `STACK_LOG_MAX_FILES` from the services' `logging`.
    pub(super) log_rotation: Option<(String, String)>,
}

impl ProjectDraft {
    /// The files to write: `stack.env`, and the dev secrets when there are values.
    pub(super) fn files(&self) -> Vec<OutFile> {
        let mut files = vec![OutFile {
            path: PROJECT_FILE.into(),
            contents: self.stack_env(),
            mode: 0o644,
        }];
        if !self.dev_secrets.is_empty() {
            files.push(OutFile {
                path: DEV_SECRETS.into(),
                contents: self.secrets_env(),
                mode: 0o600,
            });
        }
        files
    }

    fn stack_env(&self) -> String {
        let mut text = format!(
            "# Imported by `stack import compose` from `{}`.\n# Secret values are in `{DEV_SECRETS}` (mode 0600), never here.\n",
            self.source
        );
        text.push_str(&format!("STACK_PROJECT={}\n", self.project));
        let names: Vec<&str> = self.services.iter().map(|s| s.name.as_str()).collect();
        text.push_str(&format!("STACK_SERVICES={}\n", names.join(",")));
        let proxy = if self.proxy { "caddy" } else { "none" };
        text.push_str(&format!("STACK_PROXY={proxy}\n"));
        if let Some(email) = &self.tls_email {
            text.push_str(&format!("STACK_TLS_EMAIL={}\n", writer::template(email)));
        }
        if let Some(networks) = &self.networks {
            text.push_str(&format!("STACK_NETWORKS={networks}\n"));
        }
        if let Some((size, files)) = &self.log_rotation {
            text.push_str(&format!("STACK_LOG_MAX_SIZE={}\n", writer::template(size)));
            text.push_str(&format!(
                "STACK_LOG_MAX_FILES={}\n",
                writer::template(files)
            ));
        }
        if !self.secrets.is_empty() {
            text.push_str(&format!("STACK_SECRETS={}\n", self.secrets.join(",")));
        }
        for (key, reason) in &self.not_carried {
            text.push_str(&not_carried(key, reason));
        }
        if !self.from_dotenv.is_empty() {
            let mut lines: Vec<String> = self
                .from_dotenv
                .iter()
                .map(|(key, value)| format!("{key}={}", writer::template(value)))
                .collect();
            // Sorted as written lines (`A1=` before `A=`), as the import always wrote them.
            lines.sort();
            text.push_str("\n# From `.env`\n");
            for line in lines {
                text.push_str(&line);
                text.push('\n');
            }
        }
        for service in &self.services {
            service.write(&mut text);
        }
        text
    }

    fn secrets_env(&self) -> String {
        let mut text = format!(
            "# Secrets imported by `stack import compose` from `{}`.\n# Keep this file mode 0600; never commit it.\n",
            self.source
        );
        for (key, value) in &self.dev_secrets {
            text.push_str(&format!("{key}={}\n", secret_value(value)));
        }
        text
    }
}

/// The comment that lists a key as not carried.
fn not_carried(key: &str, reason: &str) -> String {
    format!("# not carried: `{key}`: {reason}\n")
}

/// The secret value for `secrets.env`.
fn secret_value(value: &str) -> String {
    // A value with `${` keeps its interpolation; anything else is literal.
    if value.contains("${") {
        writer::template(value)
    } else {
        writer::literal(value)
    }
}
