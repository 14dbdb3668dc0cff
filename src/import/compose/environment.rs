//! `environment` over `env_file` to `ENV_<NAME>` (and `ENV`), secrets moved to
//! `secrets.env`.

use std::collections::{BTreeMap, BTreeSet};

use super::text::{as_literal, escape_dollars, pieces, Piece};
use super::yaml::Node;
use super::{
    dotenv, embeds_credentials, is_key, is_secret_name, normalise, pairs_opt, Import, Result,
    ServiceDraft,
};

impl Import<'_> {
    /// `environment` over `env_file`, secrets moved to `secrets.env`.
    pub(super) fn environment(&mut self, service: &mut ServiceDraft, node: &Node) -> Result<()> {
        let input = service.input.clone();
        // name → template text (stack.env form)
        let mut env: Vec<(String, String)> = Vec::new();
        // Names whose env-file value took a secret's value from an earlier line.
        let mut tainted = BTreeSet::new();
        self.env_files(&input, node, &mut env, &mut tainted)?;
        for (name, value) in pairs_opt(node.get("environment")) {
            tainted.remove(&name);
            match value {
                Some(value) => put(&mut env, name, value),
                // Compose gives it the value of `.env` (or of the shell).
                None if self.dotenv.contains_key(&name) => {
                    let value = format!("${{{name}}}");
                    put(&mut env, name, value)
                }
                None => self.finding(
                    Some(&input),
                    &format!("environment.{name}"),
                    "a variable without a value takes it from the shell when Compose runs (it is not in `.env`); give it a value",
                ),
            }
        }
        let mut odd = Vec::new();
        for (name, value) in env {
            let value = self.env_value(service, &name, &value, tainted.contains(&name));
            if is_key(&name) {
                service.set(&format!("ENV_{name}"), &value);
            } else if name.contains('=') || name.chars().any(char::is_whitespace) {
                self.finding(
                    Some(&input),
                    &format!("environment.{name}"),
                    "a variable whose name is not upper-case goes into the `ENV` list, whose names cannot hold `=` or blanks",
                );
            } else if value.trim() != value {
                self.finding(
                    Some(&input),
                    &format!("environment.{name}"),
                    "a variable whose name is not upper-case goes into the `ENV` list, whose values cannot start or end with a blank",
                );
            } else {
                // `\,` keeps a comma inside the item (CVAT's `no_proxy`).
                odd.push(self.list_item(&input, "environment", &format!("{name}={value}")));
            }
        }
        if !odd.is_empty() {
            service.set("ENV", &odd.join(","));
        }
        Ok(())
    }

    /// The variables of the service's `env_file`s, in order, into `env`. A `${NAME}` naming
    /// a variable set earlier in these files (and not in `.env`) takes that value, as
    /// python-dotenv and Compose read an env file (`DATABASE_URL=postgres://${POSTGRES_USER}@db` after
    /// `POSTGRES_USER=app`); in `stack.env` it would name a project key instead.
    fn env_files(
        &mut self,
        input: &str,
        node: &Node,
        env: &mut Vec<(String, String)>,
        tainted: &mut BTreeSet<String>,
    ) -> Result<()> {
        let mut local: BTreeMap<String, String> = BTreeMap::new();
        for file in env_files(node.get("env_file")) {
            let path = normalise(&self.dir.join(&file.path));
            if path == self.dir.join(".env") {
                self.dotenv_is_env_file = true;
            }
            let Some(text) = self.reader.read(&path)? else {
                if file.required {
                    self.finding(
                        Some(input),
                        "env_file",
                        format!("`{}` does not exist", file.path),
                    );
                }
                continue;
            };
            let (assignments, skipped) = dotenv::parse(&text);
            for skip in skipped {
                self.finding(
                    Some(input),
                    "env_file",
                    format!("`{}` line {}: {}", file.path, skip.line, skip.reason),
                );
            }
            for assignment in assignments {
                let (template, used) = self.resolve_local(&assignment.template, &local);
                if used.iter().any(|name| is_secret_name(name)) {
                    tainted.insert(assignment.key.clone());
                } else {
                    tainted.remove(&assignment.key);
                }
                match as_literal(&template) {
                    Some(value) => local.insert(assignment.key.clone(), value),
                    None => local.remove(&assignment.key),
                };
                put(env, assignment.key, template);
            }
        }
        Ok(())
    }

    /// `${NAME}` (or `${NAME:-default}`, `${NAME-default}`) in `template` replaced by the
    /// value `local` gives NAME, unless `.env` sets NAME: Compose v2 looks the project's
    /// environment up first, and the reference reads `.env` in `stack.env` too; with the
    /// names replaced.
    fn resolve_local(
        &self,
        template: &str,
        local: &BTreeMap<String, String>,
    ) -> (String, Vec<String>) {
        let mut out = String::new();
        let mut used = Vec::new();
        for piece in pieces(template) {
            match piece {
                Piece::Text(text) => out.push_str(&text),
                Piece::Var { name, rest, braced } => {
                    let value = local
                        .get(&name)
                        .filter(|_| !self.dotenv.contains_key(&name))
                        .filter(|value| {
                            rest.is_empty()
                                || rest.starts_with('-')
                                || (rest.starts_with(":-") && !value.is_empty())
                        });
                    match value {
                        Some(value) if braced => {
                            out.push_str(&escape_dollars(value));
                            used.push(name);
                        }
                        _ if braced => out.push_str(&format!("${{{name}{rest}}}")),
                        _ => out.push_str(&format!("${name}{rest}")),
                    }
                }
            }
        }
        (out, used)
    }

    /// A variable's value as written: a secret's literal (by its name, or a URL with a
    /// password in it, or a value that took a secret's from an earlier env-file line)
    /// moved to `secrets.env`.
    fn env_value(
        &mut self,
        service: &ServiceDraft,
        name: &str,
        value: &str,
        tainted: bool,
    ) -> String {
        let credentials = as_literal(value).is_some_and(|v| embeds_credentials(&v));
        if !is_secret_name(name) && !credentials && !tainted {
            return self.template(value);
        }
        match as_literal(value) {
            // Empty is empty: nothing to keep secret, nothing to generate.
            Some(literal) if literal.is_empty() => String::new(),
            Some(literal) => {
                let key = self.secret_key(name, &service.name, literal);
                format!("${{{key}}}")
            }
            None => self.template(value),
        }
    }
}

/// Set `name` in `env`, the later value winning (and placed last).
fn put(env: &mut Vec<(String, String)>, name: String, value: String) {
    env.retain(|(n, _)| *n != name);
    env.push((name, value));
}

struct EnvFile {
    path: String,
    required: bool,
}

fn env_files(node: Option<&Node>) -> Vec<EnvFile> {
    let one = |node: &Node| -> Option<EnvFile> {
        match node {
            Node::Map(_) => Some(EnvFile {
                path: node.get("path").and_then(Node::scalar)?,
                required: !matches!(node.get("required"), Some(Node::Bool(false))),
            }),
            other => Some(EnvFile {
                path: other.scalar()?,
                required: true,
            }),
        }
    };
    match node {
        Some(Node::Seq(items)) => items.iter().filter_map(one).collect(),
        Some(other) => one(other).into_iter().collect(),
        None => Vec::new(),
    }
}
