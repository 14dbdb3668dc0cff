//! Checks of single values that end up in generated files (hosts, paths, images), and
//! the checks across services (dependencies, ports, routes). This file owns the shared
//! error helpers and the small scalar checks; each concern has its own submodule.

mod checks;
mod images;
mod mounts;
mod networks;
mod ports;
mod routes;
mod server;

pub(crate) use checks::{check, warnings};
pub use images::image;
#[cfg(test)]
pub use images::image_reference;
pub use mounts::{continues as continues_volume_entry, mount, volume_entries};
pub use ports::publish;
pub use routes::{hostname, is_hostname, route, upstream};
pub use server::{server_path, ssh_host, ssh_hosts, ssh_user};

use std::path::Path;

use super::model::Restart;
use super::values::Value;
use crate::error::Diagnostic;

/// The trimmed value when `ok`, else the error `message` with `hint`.
fn checked(value: &Value, ok: bool, message: String, hint: &str) -> Result<String, Diagnostic> {
    if ok {
        Ok(value.text.trim().to_string())
    } else {
        Err(bad(value, message, hint))
    }
}

fn bad(value: &Value, message: String, hint: &str) -> Diagnostic {
    Diagnostic::new(message)
        .with_span(value.span.cloned())
        .hint(hint.to_string())
}

/// A path relative to the project (build context, Dockerfile).
pub fn relative_path(value: &Value) -> Result<String, Diagnostic> {
    let text = value.text.trim();
    let ok =
        !text.is_empty() && !text.chars().any(|c| c.is_control()) && !Path::new(text).is_absolute();
    checked(
        value,
        ok,
        format!(
            "`{}` must be a path relative to the project: {}",
            value.key,
            value.quoted()
        ),
        "write e.g. `./api`",
    )
}

/// `DOCKERFILE`: a file inside the build context, relative to it. Checked on the text:
/// `..` may not climb out, and an absolute path is refused (the project file is committed
/// and runs on other machines). `context` is the `BUILD` value, for the message.
pub fn dockerfile(value: &Value, context: &Value) -> Result<String, Diagnostic> {
    let text = value.text.trim();
    let clean = super::paths::normalize(Path::new(text));
    let ok = !text.chars().any(|c| c.is_control())
        && !clean.is_absolute()
        && !clean.starts_with("..")
        && !clean.as_os_str().is_empty();
    checked(
        value,
        ok,
        format!(
            "`{}` must name a file inside the build context {} (`{}`), relative to it: {}",
            value.key,
            context.quoted(),
            context.key,
            value.quoted()
        ),
        "write the path from the `BUILD` folder without leaving it (e.g. `docker/Dockerfile`), \
         or make `BUILD` a folder that holds the Dockerfile",
    )
}

/// An HTTP path for a health probe; it is placed in a shell command, so it is strict.
pub fn health_path(value: &Value) -> Result<String, Diagnostic> {
    let text = value.text.trim();
    let ok = text.starts_with('/')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-._~%?=&".contains(c));
    checked(
        value,
        ok,
        format!(
            "`{}` must be an HTTP path such as `/health`, not {}",
            value.key,
            value.show(text)
        ),
        "start with `/`; use letters, digits and `/-._~%?=&`",
    )
}

/// `METRICS`: an HTTP path such as `/metrics` (`off` is handled by the caller).
pub fn metrics_path(value: &Value) -> Result<String, Diagnostic> {
    let text = value.text.trim();
    let ok = text.starts_with('/')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-._~%".contains(c));
    checked(
        value,
        ok,
        format!(
            "`{}` must be an HTTP path such as `/metrics`, or `off`, not {}",
            value.key,
            value.show(text)
        ),
        "start with `/` and use letters, digits and `/-._~%`; or write `off`",
    )
}

/// A container variable's value: tab and line feed pass (Compose keeps them), other
/// control characters are refused (Compose, the engine or the bundle's `.env` mangle them).
pub fn env_value(value: &Value) -> Result<(), Diagnostic> {
    let control = value
        .text
        .chars()
        .find(|c| c.is_control() && *c != '\t' && *c != '\n');
    match control {
        None => Ok(()),
        Some(c) => Err(bad(
            value,
            format!(
                "`{}` holds the control character U+{:04X}",
                value.key, c as u32
            ),
            "remove it; a value may hold tabs (`\\t`) and line breaks (`\\n`) only",
        )),
    }
}

pub fn restart(value: &Value) -> Result<Restart, Diagnostic> {
    let text = value.text.trim();
    text.parse().map_err(|()| {
        bad(
            value,
            format!(
                "`{}` must be a restart policy, not {}",
                value.key,
                value.show(text)
            ),
            "use `no`, `always`, `unless-stopped` or `on-failure[:N]`",
        )
    })
}
