//! What a service is attached to beyond ports and volumes: its `NETWORKS`, the secrets it
//! gets as files (`SECRET_FILES`), the single sign-on or password in front of its routes
//! (`AUTH`, `BASIC_AUTH`) and the `ENV_FILE`s whose variables it takes. Pure.

use super::{get, AttrMap, Context};
use crate::config::lookup::Errors;
use crate::config::model::{BasicAuth, ForwardAuth, SecretFile, DEFAULT_NETWORK};
use crate::config::validate;
use crate::config::values::{check_name, Value};
use crate::error::Diagnostic;

pub(super) struct Attachments {
    pub networks: Vec<String>,
    pub secret_files: Vec<SecretFile>,
    pub auth: Option<ForwardAuth>,
    pub basic_auth: Option<BasicAuth>,
    pub env_files: Vec<String>,
}

pub(super) fn read(context: &Context, map: &AttrMap, errors: &mut Errors) -> Attachments {
    Attachments {
        networks: networks(map, errors),
        secret_files: secret_files(context, map, errors),
        auth: get(map, "AUTH").and_then(|v| errors.take(forward_auth(v))),
        basic_auth: get(map, "BASIC_AUTH").and_then(|v| errors.take(basic_auth(context, v))),
        env_files: get(map, "ENV_FILE")
            .map(|v| {
                v.list()
                    .iter()
                    .filter_map(|item| {
                        let one = Value { text: item, ..*v };
                        errors.take(validate::relative_path(&one))
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// `NETWORKS`: network names (whether each is declared is checked with the globals);
/// unset, the implicit `default` network.
fn networks(map: &AttrMap, errors: &mut Errors) -> Vec<String> {
    let Some(v) = get(map, "NETWORKS") else {
        return vec![DEFAULT_NETWORK.to_string()];
    };
    let mut out: Vec<String> = Vec::new();
    for item in v.list() {
        if !check_name(&item, "_.-") {
            errors.push(bad(
                v,
                format!(
                    "`{}` names the network `{item}`, which is not a valid name",
                    v.key
                ),
                "a network name has lower-case letters, digits, `_`, `.` and `-`",
            ));
        } else if !out.contains(&item) {
            out.push(item);
        }
    }
    if out.is_empty() && errors.is_empty() {
        errors.push(bad(
            v,
            format!("`{}` is empty", v.key),
            "name at least one network, or leave the key out for the `default` network",
        ));
    }
    out
}

/// `SECRET_FILES`: `name=KEY` (the secret `KEY` as `/run/secrets/name`), `/abs/path=KEY`,
/// or a bare `KEY` (as `/run/secrets/<key in lower case>`).
fn secret_files(context: &Context, map: &AttrMap, errors: &mut Errors) -> Vec<SecretFile> {
    let Some(v) = get(map, "SECRET_FILES") else {
        return Vec::new();
    };
    let mut out: Vec<SecretFile> = Vec::new();
    for item in v.list() {
        let (name, key) = match item.split_once('=') {
            Some((name, key)) => (name.trim().to_string(), key.trim().to_string()),
            None => (item.to_ascii_lowercase(), item.clone()),
        };
        let target = if name.starts_with('/') {
            name.clone()
        } else {
            format!("/run/secrets/{name}")
        };
        let name_ok = !name.is_empty()
            && !name.contains("..")
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
            && (name.starts_with('/') || !name.contains('/'));
        if !name_ok {
            errors.push(bad(
                v,
                format!("`{}`: `{name}` is not a file name for a secret", v.key),
                "write `name=KEY` with a file name of letters, digits, `.`, `_`, `-` (it goes under /run/secrets/), or an absolute path",
            ));
            continue;
        }
        if !context.keys.secrets.contains(&key) {
            errors.push(bad(
                v,
                format!("`{}` refers to `{key}`, which is not a secret", v.key),
                &format!(
                    "list `{key}` in `STACK_SECRETS` and set it in the environment's secrets.env"
                ),
            ));
            continue;
        }
        let Some(value) = context.keys.for_container(&key) else {
            // A missing secret is reported with the secrets (dev generates it).
            out.push(SecretFile {
                target,
                key,
                value: String::new(),
            });
            continue;
        };
        if out.iter().any(|f| f.target == target) {
            errors.push(bad(
                v,
                format!("`{}` mounts two secrets at `{target}`", v.key),
                "give each secret its own file name",
            ));
            continue;
        }
        out.push(SecretFile {
            target,
            key,
            value: value.text.to_string(),
        });
    }
    out
}

/// `AUTH`: `service:port/path` of a forward-auth endpoint (an identity provider's outpost).
fn forward_auth(v: &Value) -> Result<ForwardAuth, Diagnostic> {
    let text = v.text.trim();
    let error = || {
        bad(
            v,
            format!("`{}` must be `service:port/path`, not {}", v.key, v.show(text)),
            "write e.g. `authelia:9091/api/verify` or `authentik-outpost:9000/outpost.goauthentik.io/auth/caddy`",
        )
    };
    let (address, path) = match text.find('/') {
        Some(at) => (&text[..at], &text[at..]),
        None => (text, "/"),
    };
    let (host, port) = address.rsplit_once(':').ok_or_else(error)?;
    let port: u16 = port.parse().ok().filter(|p| *p > 0).ok_or_else(error)?;
    let path_ok = path
        .chars()
        .all(|c| c.is_ascii_graphic() && !"\"'{}\\;`$".contains(c));
    if !validate::is_hostname(host) || !path_ok {
        return Err(error());
    }
    Ok(ForwardAuth {
        host: host.to_string(),
        port,
        path: path.to_string(),
    })
}

/// `BASIC_AUTH`: `user:KEY`, where the secret `KEY` holds a bcrypt hash.
fn basic_auth(context: &Context, v: &Value) -> Result<BasicAuth, Diagnostic> {
    let text = v.text.trim();
    let Some((user, key)) = text.split_once(':') else {
        return Err(bad(
            v,
            format!("`{}` must be `user:SECRET_KEY`", v.key),
            "name the user and the secret that holds its bcrypt hash (`caddy hash-password` or `htpasswd -nbB` makes one)",
        ));
    };
    if user.is_empty()
        || !user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
    {
        return Err(bad(
            v,
            format!(
                "`{}`: the user `{user}` has characters a password file cannot hold",
                v.key
            ),
            "use letters, digits, `.`, `_`, `-` and `@`",
        ));
    }
    if !context.keys.secrets.contains(key) {
        return Err(bad(
            v,
            format!("`{}` refers to `{key}`, which is not a secret", v.key),
            &format!("list `{key}` in `STACK_SECRETS` and put the bcrypt hash in the environment's secrets.env"),
        ));
    }
    let hash = context
        .keys
        .for_container(key)
        .map(|h| h.text.trim().to_string())
        .unwrap_or_default();
    let bcrypt = ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p));
    if !hash.is_empty() && !bcrypt {
        return Err(bad(
            v,
            format!("`{key}` does not hold a bcrypt hash"),
            "store the hash, not the password: `caddy hash-password` or `htpasswd -nbB user password` makes one",
        ));
    }
    Ok(BasicAuth {
        user: user.to_string(),
        key: key.to_string(),
        hash,
    })
}

fn bad(v: &Value, message: String, hint: &str) -> Diagnostic {
    Diagnostic::new(message)
        .with_span(v.span.cloned())
        .hint(hint.to_string())
}
