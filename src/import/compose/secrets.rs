//! `secrets`: the top-level file secrets a service mounts, read into `secrets.env` and
//! mounted with `SECRET_FILES`; and the key a secret value is kept under.

use super::yaml::Node;
use super::{is_reserved_key, key_name, normalise, Import, Result, ServiceDraft};

impl Import<'_> {
    /// A key in `secrets.env` for `value` of variable `name`: the name itself unless it
    /// holds another value.
    pub(super) fn secret_key(&mut self, name: &str, service: &str, value: String) -> String {
        let mut key = key_name(name);
        if is_reserved_key(&key) && !is_preset_secret(&key) {
            key = format!("IMPORTED_{key}");
        }
        if let Some(Some(existing)) = self.secrets.get(&key) {
            if *existing != value {
                key = format!("{}_{key}", key_name(service));
            }
        }
        self.secrets.insert(key.clone(), Some(value));
        key
    }

    /// `SECRET_FILES` from the service's `secrets`, with the files' contents read.
    pub(super) fn service_secrets(
        &mut self,
        service: &mut ServiceDraft,
        node: &Node,
    ) -> Result<()> {
        let input = service.input.clone();
        let Some(Node::Seq(items)) = node.get("secrets") else {
            return Ok(());
        };
        let mut entries = Vec::new();
        for item in items {
            let (source, target) = match item {
                Node::Map(keys) => {
                    for (key, value) in keys {
                        let fine = key == "source"
                            || key == "target"
                            || (key == "mode"
                                && matches!(value, Node::Int(0o400) | Node::Int(400)));
                        if !fine {
                            self.finding(
                                Some(&input),
                                &format!("secrets.{key}"),
                                "stack mounts secret files with mode 0400, owned by root",
                            );
                        }
                    }
                    let Some(source) = item.get("source").and_then(Node::scalar) else {
                        continue;
                    };
                    let target = item
                        .get("target")
                        .and_then(Node::scalar)
                        .unwrap_or_else(|| source.clone());
                    (source, target)
                }
                other => {
                    let Some(source) = other.scalar() else {
                        continue;
                    };
                    (source.clone(), source)
                }
            };
            let Some(key) = self.file_secret(&input, &source)? else {
                continue;
            };
            entries.push(format!("{target}={key}"));
        }
        if !entries.is_empty() {
            service.set("SECRET_FILES", &entries.join(","));
        }
        Ok(())
    }

    /// The secret key holding the top-level secret `name`'s file, read once.
    fn file_secret(&mut self, input: &str, name: &str) -> Result<Option<String>> {
        if let Some(key) = self.file_secrets.get(name) {
            return Ok(Some(key.clone()));
        }
        let Some(path) = self.top_secret_file(input, name) else {
            return Ok(None);
        };
        let path = normalise(&self.dir.join(path));
        let Some(mut content) = self.reader.read(&path)? else {
            self.finding(
                Some(input),
                &format!("secrets.{name}"),
                format!("the secret's file `{}` does not exist", path.display()),
            );
            return Ok(None);
        };
        if content.ends_with('\n') {
            content.pop();
            if content.ends_with('\r') {
                content.pop();
            }
        }
        let key = self.secret_key(name, input, content);
        self.file_secrets.insert(name.to_string(), key.clone());
        Ok(Some(key))
    }

    fn top_secret_file(&mut self, input: &str, name: &str) -> Option<String> {
        let spec = self.top_secrets().and_then(|s| s.get(name).cloned());
        let Some(spec) = spec else {
            self.finding(
                Some(input),
                &format!("secrets.{name}"),
                "names no top-level secret",
            );
            return None;
        };
        match spec.get("file").and_then(Node::scalar) {
            Some(file) => Some(file),
            None => {
                self.finding(
                    None,
                    &format!("secrets.{name}"),
                    "only file secrets are carried (`environment` and `external` secrets are not)",
                );
                None
            }
        }
    }

    fn top_secrets(&self) -> Option<Node> {
        self.top_doc_secrets.clone()
    }
}

/// Preset secrets keep their names in `secrets.env` (`POSTGRES_PASSWORD`).
fn is_preset_secret(key: &str) -> bool {
    crate::config::presets::PRESETS
        .iter()
        .any(|p| p.secrets.contains(&key) || key.starts_with(&format!("{}_", p.name)))
}
