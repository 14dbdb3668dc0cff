//! Image references (`registry:5000/team/app:1.2@sha256:…`) as the engine, the audit and
//! the import read them, and the images of well-known data stores: one definition each.

/// `repo[:tag]` → (repo, tag), `latest` when untagged; a digest stays in the name.
pub fn split_reference(image: &str) -> (&str, &str) {
    if image.contains('@') {
        return (image, "");
    }
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(i) => (&image[..last_slash + i], &image[last_slash + i + 1..]),
        None => (image, "latest"),
    }
}

/// The repository's last path part without tag or digest: `library/postgres:16` →
/// `postgres`.
pub fn image_name(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let (repository, _) = split_reference(without_digest);
    repository.rsplit('/').next().unwrap_or(repository)
}

/// An image without a tag, or tagged `latest`, changes under you; a digest pins it.
pub fn unpinned(image: &str) -> bool {
    split_reference(image).1 == "latest"
}

/// A data store's image name, and whether it speaks HTTP on its ports.
pub struct DataStore {
    pub name: &'static str,
    pub http: bool,
}

/// Images of data stores: the audit refuses publishing them, the import never routes
/// the ones that do not speak HTTP.
pub const DATA_STORES: &[DataStore] = &[
    DataStore {
        name: "postgres",
        http: false,
    },
    DataStore {
        name: "mysql",
        http: false,
    },
    DataStore {
        name: "mariadb",
        http: false,
    },
    DataStore {
        name: "redis",
        http: false,
    },
    DataStore {
        name: "mongo",
        http: false,
    },
    DataStore {
        name: "valkey",
        http: false,
    },
    DataStore {
        name: "memcached",
        http: false,
    },
    DataStore {
        name: "elasticsearch",
        http: true,
    },
    DataStore {
        name: "opensearch",
        http: true,
    },
    DataStore {
        name: "clickhouse",
        http: true,
    },
    DataStore {
        name: "minio",
        http: true,
    },
    DataStore {
        name: "meilisearch",
        http: true,
    },
    DataStore {
        name: "rabbitmq",
        http: false,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(split_reference("postgres:16"), ("postgres", "16"));
        assert_eq!(split_reference("reg:5000/a/b"), ("reg:5000/a/b", "latest"));
        assert_eq!(split_reference("reg:5000/a/b:1"), ("reg:5000/a/b", "1"));
    }

    #[test]
    fn names() {
        assert_eq!(image_name("postgres:16"), "postgres");
        assert_eq!(image_name("docker.io/library/redis:7@sha256:ab"), "redis");
        assert_eq!(image_name("reg:5000/team/app"), "app");
    }

    #[test]
    fn pinning() {
        assert!(unpinned("postgres"));
        assert!(unpinned("reg:5000/postgres:latest"));
        assert!(unpinned(""));
        assert!(!unpinned("postgres:16"));
        assert!(!unpinned("postgres@sha256:ab"));
        assert!(!unpinned("postgres:latest@sha256:ab"));
    }
}

/// `PULL_POLICY`: when `start` and `deploy` fetch a service's image (Compose's
/// `pull_policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PullPolicy {
    /// Pull at every `start` and `deploy`, so a moving tag is followed.
    Always,
    /// Never pull: the image must be on the engine already.
    Never,
    /// Pull only when the image is missing (stack's default; Compose's `if_not_present`).
    Missing,
    /// Build a `BUILD` service at every `start` and `deploy`.
    Build,
}

impl PullPolicy {
    /// As Compose v1 (which checks the bundle) and v2 both read it.
    pub fn compose(self) -> &'static str {
        match self {
            PullPolicy::Always => "always",
            PullPolicy::Never => "never",
            PullPolicy::Missing => "if_not_present",
            PullPolicy::Build => "build",
        }
    }
}

/// `PULL_POLICY`: `always`, `never`, `missing` (or `if_not_present`), `build`. Compose's
/// schedules (`daily`, `weekly`, `every_12h`) are refused with what to write instead.
pub fn pull_policy(
    value: &crate::config::values::Value,
) -> Result<PullPolicy, crate::error::Diagnostic> {
    let text = value.text.trim().to_ascii_lowercase();
    let scheduled = ["daily", "weekly"].contains(&text.as_str()) || text.starts_with("every_");
    if scheduled {
        return Err(crate::error::Diagnostic::new(format!(
            "`{}` is a pull schedule (`{text}`), which stack does not keep",
            value.key
        ))
        .with_span(value.span.cloned())
        .hint("Compose v1, which checks the bundle, has no schedules and stack records no pull times: write `always` to pull at every `start` and `deploy`, or pin the tag and change it to update"));
    }
    Ok(
        match value.choice(&["always", "never", "missing", "if_not_present", "build"])? {
            "always" => PullPolicy::Always,
            "never" => PullPolicy::Never,
            "build" => PullPolicy::Build,
            _ => PullPolicy::Missing,
        },
    )
}
