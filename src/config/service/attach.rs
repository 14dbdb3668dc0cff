//! What a service is attached to beyond ports and volumes: its `NETWORKS`, the secrets it
//! gets as files (`SECRET_FILES`), the single sign-on or password in front of its routes
//! (`AUTH`, `BASIC_AUTH`) and the `ENV_FILE`s whose variables it takes. Pure.

use super::{get, AttrMap, Context};
use crate::config::lookup::Errors;
use crate::config::model::{
    secret_file_var, BasicAuth, ForwardAuth, SecretFile, Secrets, DEFAULT_NETWORK,
};
use crate::config::validate;
use crate::config::values::{check_name, Value};
use crate::error::Diagnostic;

pub(super) struct Attachments {
    pub networks: Vec<String>,
    pub secret_files: Vec<SecretFile>,
    /// The files' values, by their `.env` name.
    pub secret_values: Secrets,
    pub auth: Option<ForwardAuth>,
    pub basic_auth: Option<BasicAuth>,
    pub env_files: Vec<String>,
}

pub(super) fn read(context: &Context, map: &AttrMap, errors: &mut Errors) -> Attachments {
    let (secret_files, secret_values) = secret_files(context, map, errors);
    Attachments {
        networks: networks(map, errors),
        secret_files,
        secret_values,
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
fn secret_files(
    context: &Context,
    map: &AttrMap,
    errors: &mut Errors,
) -> (Vec<SecretFile>, Secrets) {
    let mut values = Secrets::default();
    let Some(v) = get(map, "SECRET_FILES") else {
        return (Vec::new(), values);
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
                format!(
                    "`{}` refers to {}, which is not a secret",
                    v.key,
                    v.show(&key)
                ),
                &format!(
                    "list `{key}` in `STACK_SECRETS` and set it in the environment's secrets.env"
                ),
            ));
            continue;
        }
        let Some(value) = context.keys.for_container(&key) else {
            // A missing secret is reported with the secrets (dev generates it).
            values.0.entry(secret_file_var(&key)).or_default();
            out.push(SecretFile {
                target,
                key,
                mode: 0,
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
        values
            .0
            .insert(secret_file_var(&key), value.text.to_string());
        out.push(SecretFile {
            target,
            key,
            mode: 0,
        });
    }
    (out, values)
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
            format!("`{}` refers to {}, which is not a secret", v.key, v.show(key)),
            &format!("list `{key}` in `STACK_SECRETS` and put the bcrypt hash in the environment's secrets.env"),
        ));
    }
    let hash = context
        .keys
        .for_container(key)
        .map(|h| h.text.trim().to_string())
        .unwrap_or_default();
    if let (false, Err(why)) = (hash.is_empty(), bcrypt_hash(&hash)) {
        // The value is a secret: only what is wrong with it is said.
        return Err(bad(
            v,
            format!("`{key}` does not hold a bcrypt hash: {why}"),
            "store the hash, not the password: `caddy hash-password` or `htpasswd -nbB user password` makes one \
             (`$2y$10$` then 53 characters of `./A-Za-z0-9`); single-quote it in secrets.env",
        ));
    }
    Ok(BasicAuth {
        user: user.to_string(),
        key: key.to_string(),
        hash,
    })
}

/// A bcrypt hash as Caddy and nginx check it: `$2a$`, `$2b$` or `$2y$`, a two-digit cost
/// from 04 to 31, `$`, then 53 characters of bcrypt's base64 (22 of salt, 31 of hash).
/// What is wrong, never the value.
pub(crate) fn bcrypt_hash(hash: &str) -> Result<(), &'static str> {
    let Some(rest) = ["$2a$", "$2b$", "$2y$"]
        .iter()
        .find_map(|p| hash.strip_prefix(p))
    else {
        return Err("it does not start with `$2a$`, `$2b$` or `$2y$`");
    };
    let cost = rest
        .get(..2)
        .filter(|c| c.bytes().all(|b| b.is_ascii_digit()));
    let Some(cost) = cost.and_then(|c| c.parse::<u8>().ok()) else {
        return Err("the cost after the prefix is not two digits");
    };
    if !(4..=31).contains(&cost) {
        return Err("the cost is not between 04 and 31");
    }
    let Some(body) = rest[2..].strip_prefix('$') else {
        return Err("no `$` after the cost");
    };
    if !body
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
    {
        return Err("the salt and hash hold characters other than `./A-Za-z0-9`");
    }
    if body.len() != 53 {
        return Err("the salt and hash are not 53 characters long");
    }
    Ok(())
}

fn bad(v: &Value, message: String, hint: &str) -> Diagnostic {
    Diagnostic::new(message)
        .with_span(v.span.cloned())
        .hint(hint.to_string())
}

#[cfg(test)]
mod tests {
    use super::bcrypt_hash;

    #[test]
    fn bcrypt_hashes_are_checked_whole() {
        let good = bcrypt::hash("open-sesame", 4).unwrap();
        assert_eq!(bcrypt_hash(&good), Ok(()));
        let body = &good[7..];
        for prefix in ["$2a$10$", "$2b$04$", "$2y$31$"] {
            assert_eq!(bcrypt_hash(&format!("{prefix}{body}")), Ok(()), "{prefix}");
        }
        let b53 = "abcdefghijklmnopqrstuvwxyz0123456789./ABCDEFGHIJKLMNO";
        assert_eq!(b53.len(), 53);
        assert_eq!(bcrypt_hash(&format!("$2y$12${b53}")), Ok(()));
        for bad in [
            "$2y$".to_string(),
            "$2y$10".into(),
            "$2y$10$".into(),
            format!("$2x$10${b53}"),
            format!("$2y$1${b53}"),
            format!("$2y$03${b53}"),
            format!("$2y$32${b53}"),
            format!("$2y$1a${b53}"),
            format!("$2y$10{b53}"),
            "$2y$10$short".into(),
            format!("$2y$10${b53}Q"),
            format!("$2y$10${}", &b53[1..]),
            format!("$2y$10${}$", &b53[1..]),
            format!("$2y$10${}+", &b53[1..]),
            format!("$2y$10${}\u{e9}", &b53[2..]),
            b53.to_string(),
        ] {
            let bad = bad.as_str();
            assert!(bcrypt_hash(bad).is_err(), "{bad}");
        }
    }
}
