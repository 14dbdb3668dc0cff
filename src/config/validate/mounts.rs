//! `VOLUMES`: Compose short volume syntax into named, bind and anonymous mounts.

use std::path::Path;

use super::bad;
use crate::config::model::{HostPath, Mount, MountOptions, PROPAGATIONS};
use crate::config::paths::normalize;
use crate::config::values::Value;
use crate::error::Diagnostic;

/// The entries of a `VOLUMES` list: comma-separated, where a word after an entry with
/// options (`./d:/d:ro,z`: `z`) continues those options, as in `docker run -v`.
pub fn volume_entries(text: &str) -> Vec<String> {
    let mut entries: Vec<String> = Vec::new();
    for item in crate::config::values::split_list(text) {
        match entries.last_mut() {
            Some(last) if continues(last, &item) => {
                last.push(',');
                last.push_str(&item);
            }
            _ => entries.push(item),
        }
    }
    entries
}

/// `item` is another option of the entry `last`: a word (no `:`, not a path) after an
/// entry that has options (`source:target:options`).
pub fn continues(last: &str, item: &str) -> bool {
    !item.contains(':') && !item.starts_with('/') && last.matches(':').count() >= 2
}

/// Compose short volume syntax: `source:target[:options]`, the options comma-separated
/// (`ro`/`rw`, `z`/`Z`, a bind's propagation, a volume's `nocopy`).
pub fn mount(
    value: &Value,
    item: &str,
    project_dir: &Path,
) -> Result<(Mount, MountOptions), Diagnostic> {
    let error = |why: &str| {
        bad(
            value,
            format!(
                "`{}` has an invalid volume {}: {why}",
                value.key,
                value.show(item)
            ),
            "write `name:/path`, `./dir:/path[:ro]` or `/path`; options after the second `:`, comma-separated: `ro`, `z`/`Z`, a bind's `rshared`/`rslave`/`rprivate`…, a volume's `nocopy`",
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
    let bind_source = source.is_some_and(|s| s.starts_with(['/', '.', '~']));
    let (read_only, options) = mode_options(mode.unwrap_or(""), source.is_none(), bind_source)
        .map_err(|why| error(&why))?;
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
    let mount = match source {
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
    };
    Ok((mount, options))
}

/// The last field of a short-syntax mount: read-only, and the other options; or why not.
fn mode_options(mode: &str, anonymous: bool, bind: bool) -> Result<(bool, MountOptions), String> {
    let mut read_only = false;
    let mut options = MountOptions::default();
    for word in mode.split(',').filter(|w| !w.is_empty()) {
        match word {
            "ro" => read_only = true,
            "rw" => read_only = false,
            "z" | "Z" if !anonymous => options.relabel = word.chars().next(),
            "nocopy" if !bind => options.nocopy = true,
            "nocopy" => return Err("`nocopy` is a volume's option, not a bind's".into()),
            _ if PROPAGATIONS.contains(&word) && bind => options.propagation = Some(word.into()),
            _ if PROPAGATIONS.contains(&word) => {
                return Err(format!("`{word}` is a bind's propagation, not a volume's"))
            }
            _ if anonymous && (word == "z" || word == "Z") => {
                return Err("an anonymous volume is not relabelled; name it to relabel it".into())
            }
            _ => {
                return Err(format!(
                    "`{word}` is not a mount option stack knows (`ro`, `rw`, `z`, `Z`, `nocopy`, {}; not Docker Desktop's `cached`, `delegated`, `consistent`)",
                    PROPAGATIONS.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", ")
                ))
            }
        }
    }
    Ok((read_only, options))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str) -> Value<'_> {
        Value {
            key: "SERVICE_API_VOLUMES",
            text,
            span: None,
            secret: false,
        }
    }

    fn parse(item: &str) -> Result<(Mount, MountOptions), Diagnostic> {
        mount(&value(item), item, Path::new("/project"))
    }

    /// An option word after an entry's options continues them; a path or a mount does not.
    #[test]
    fn option_words_continue_their_entry() {
        assert_eq!(
            volume_entries("./a:/a:ro,Z,rslave, /anon,cache:/c:nocopy,data:/d"),
            ["./a:/a:ro,Z,rslave", "/anon", "cache:/c:nocopy", "data:/d"]
        );
    }

    #[test]
    fn mount_options_are_read_where_they_apply() {
        let (mount, options) = parse("./a:/a:ro,Z,rslave").unwrap();
        assert!(matches!(
            mount,
            Mount::Bind {
                read_only: true,
                ..
            }
        ));
        assert_eq!(options.relabel, Some('Z'));
        assert_eq!(options.propagation.as_deref(), Some("rslave"));
        assert_eq!(options.words(), ["Z", "rslave"]);
        let (mount, options) = parse("cache:/c:nocopy,z").unwrap();
        assert!(matches!(
            mount,
            Mount::Volume {
                read_only: false,
                ..
            }
        ));
        assert!(options.nocopy);
        assert_eq!(parse("data:/d").unwrap().1, MountOptions::default());
        for (item, why) in [
            ("./a:/a:nocopy", "a volume's option, not a bind's"),
            ("cache:/c:rshared", "a bind's propagation, not a volume's"),
            ("./a:/a:cached", "not a mount option stack knows"),
            ("./a:/a:subpath=x", "not a mount option stack knows"),
        ] {
            let error = parse(item).unwrap_err();
            assert!(error.message.contains(why), "{item}: {error:?}");
        }
    }
}
