//! `VOLUMES`: Compose short volume syntax into named, bind and anonymous mounts.

use std::path::Path;

use super::bad;
use crate::config::model::{HostPath, Mount};
use crate::config::paths::normalize;
use crate::config::values::Value;
use crate::error::Diagnostic;

/// Compose short volume syntax.
pub fn mount(value: &Value, item: &str, project_dir: &Path) -> Result<Mount, Diagnostic> {
    let error = |why: &str| {
        bad(
            value,
            format!(
                "`{}` has an invalid volume {}: {why}",
                value.key,
                value.show(item)
            ),
            "write `name:/path`, `./dir:/path[:ro]` or `/path`",
        )
    };
    if item.chars().any(|c| c.is_control()) {
        return Err(error("control characters"));
    }
    let parts: Vec<&str> = item.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [target] => (None, *target, None),
        [source, target] => (Some(*source), *target, None),
        [source, target, mode] => (Some(*source), *target, Some(*mode)),
        _ => return Err(error("too many `:`")),
    };
    let target = container_path(target).map_err(error)?;
    let read_only = match mode {
        None | Some("rw") => false,
        Some("ro") => true,
        Some(_) => {
            return Err(error(
                "stack supports the modes `ro` and `rw` only (not `z`, `Z`, `cached`, `delegated`, `consistent` or `nocopy`)",
            ))
        }
    };
    let bind = |path: std::path::PathBuf| {
        let source = match path.strip_prefix(project_dir) {
            Ok(rest) => HostPath::Project(rest.to_path_buf()),
            Err(_) => HostPath::Host(path.clone()),
        };
        Mount::Bind {
            source,
            target: target.clone(),
            read_only,
        }
    };
    Ok(match source {
        None => Mount::Anonymous { target },
        Some(s) if s.starts_with('~') => {
            return Err(error("`~` is not expanded; write an absolute or `./` path"))
        }
        Some(s) if s.starts_with('/') => bind(normalize(Path::new(s))),
        Some(s) if s.starts_with("./") || s.starts_with("../") || s == "." || s == ".." => {
            bind(normalize(&project_dir.join(s)))
        }
        Some(s) => {
            let ok = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
                && s.len() <= 128
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if !ok {
                return Err(error("a volume name uses letters, digits and `_.-`"));
            }
            Mount::Volume {
                name: s.to_string(),
                target,
                read_only,
            }
        }
    })
}

/// The path in the container of a volume: absolute, normalised, not `/`, without `..`;
/// or why not.
fn container_path(target: &str) -> Result<String, &'static str> {
    if !target.starts_with('/') {
        return Err("the path in the container must be absolute");
    }
    let target = normalize(Path::new(target));
    if target == Path::new("/") {
        return Err("cannot mount over the container's `/`");
    }
    if target
        .components()
        .any(|c| c == std::path::Component::ParentDir)
    {
        return Err("the path in the container cannot hold `..`");
    }
    Ok(target.to_string_lossy().into_owned())
}
