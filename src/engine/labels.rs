//! Compose's labels, so `docker-compose -p P ps/logs/down` see our containers, and
//! stack's own.

pub const PROJECT: &str = "com.docker.compose.project";
pub const SERVICE: &str = "com.docker.compose.service";
pub const NUMBER: &str = "com.docker.compose.container-number";
pub const ONEOFF: &str = "com.docker.compose.oneoff";
pub const CONFIG_HASH: &str = "com.docker.compose.config-hash";
pub const WORKING_DIR: &str = "com.docker.compose.project.working_dir";
pub const CONFIG_FILES: &str = "com.docker.compose.project.config_files";
pub const VERSION: &str = "com.docker.compose.version";
pub const NETWORK: &str = "com.docker.compose.network";
pub const VOLUME: &str = "com.docker.compose.volume";
/// stack's own: the short digest of the desired service.
pub const DIGEST: &str = "dev.stack.digest";
/// stack's own: the one-off containers started through one SSH connection, removed by
/// the server when that connection ends (see `deploy::Remote::leash`).
pub const LEASH: &str = "dev.stack.leash";
/// stack's own, on a built image: the fingerprint of exactly what its build was given
/// (context, Dockerfile, target, arguments); a build with the same one is skipped.
pub const BUILD_FINGERPRINT: &str = "dev.stack.build-fingerprint";
