//! The value types of a service that the configuration reads and the model
//! (`Desired`) holds: one definition each, built by the parser, copied
//! into the model as they are. Pure data: no files, no Docker.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a swarm publishes a service's ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PublishMode {
    /// Swarm's routing mesh: every node answers on the port (needs IPVS in the kernel);
    /// services reach each other through a virtual IP (IPVS too).
    #[default]
    Ingress,
    /// Only the nodes that run a task answer, on their own address; services reach
    /// each other through DNS round robin (no IPVS anywhere).
    Host,
}

/// A secret delivered as a read-only file in the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretFile {
    /// Absolute path in the container.
    pub target: String,
    /// The secret key; the bundle holds the value as `secrets/<key>` and in `.env` as
    /// [`secret_file_var`].
    pub key: String,
    /// Permission bits of the file: 0400 when the service runs as root, else 0444 (the
    /// service's user must read it; the bundle's `secrets/` folder is 0700).
    pub mode: u32,
}

impl SecretFile {
    /// The file in the bundle.
    pub fn bundle_path(&self) -> String {
        secret_file_path(&self.key, self.mode)
    }
}

/// The bundle file that holds the secret `key` for `SECRET_FILES` with `mode` (a bind
/// mount shows the host file's mode, so each mode has its own file).
pub fn secret_file_path(key: &str, mode: u32) -> String {
    if mode == 0o400 {
        format!("secrets/{key}")
    } else {
        format!("secrets/{mode:o}/{key}")
    }
}

/// The `.env` name of the secret `key` delivered as a file.
pub fn secret_file_var(key: &str) -> String {
    format!("FILE__{key}")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildSpec {
    /// Absolute path of the build context on the machine that runs `stack`.
    pub context: PathBuf,
    pub dockerfile: Option<String>,
    /// The Dockerfile stage to build.
    #[serde(default)]
    pub target: Option<String>,
    /// Build arguments.
    #[serde(default)]
    pub args: BTreeMap<String, String>,
}

/// A variable's value: plain text, or a reference to a secret kept in the `.env` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvValue {
    Plain(String),
    /// The name of the variable in the bundle's `.env` that holds the value.
    Secret(String),
}

/// A path on the engine's host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostPath {
    /// Inside the project, relative to its root (moves with it to a server).
    Project(PathBuf),
    /// A file or folder of the rendered bundle, relative to it.
    Bundle(String),
    /// An absolute path outside the project.
    Host(PathBuf),
    /// A folder of the state that outlives releases (`SERVER_PATH/<rel>` on a server,
    /// `.stack/<rel>` locally), relative to it: the maintenance switch.
    State(String),
    /// A file of the bundle that the proxy reads again on a reload: the engine binds a
    /// copy of it under the state folder (`proxy/<rel>`), rewritten in place (the same
    /// inode, which a single-file bind keeps seeing), so a change of it reloads the
    /// running proxy instead of recreating it; Compose binds the bundle's file.
    Proxy(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "type")]
pub enum Mount {
    /// A named volume of the project (short name).
    Volume {
        name: String,
        target: String,
        read_only: bool,
    },
    Bind {
        source: HostPath,
        target: String,
        read_only: bool,
    },
    Anonymous {
        target: String,
    },
}

/// A mount's options beyond read-only, from the `VOLUMES` short syntax's last field
/// (`./data:/data:ro,Z,rslave`, `cache:/cache:nocopy`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountOptions {
    /// SELinux relabelling: `z` (shared between containers) or `Z` (this one only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relabel: Option<char>,
    /// A bind's mount propagation: `rprivate`, `private`, `rshared`, `shared`, `rslave`,
    /// `slave`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation: Option<String>,
    /// A volume's: do not copy the image's files at the target into a new volume.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nocopy: bool,
}

impl MountOptions {
    /// The options as Docker's `--volume` and Compose's short syntax write them after
    /// `ro`, in a fixed order.
    pub fn words(&self) -> Vec<String> {
        let mut words: Vec<String> = self.relabel.iter().map(|c| c.to_string()).collect();
        words.extend(self.propagation.iter().cloned());
        if self.nocopy {
            words.push("nocopy".into());
        }
        words
    }
}

/// A short-syntax mount's last field: `:ro` and `options`, comma-separated, as `docker run
/// -v` and Compose take them; empty when there is none.
pub fn mount_suffix(read_only: bool, options: Option<&MountOptions>) -> String {
    let mut words: Vec<String> = read_only.then(|| "ro".to_string()).into_iter().collect();
    words.extend(options.map(MountOptions::words).unwrap_or_default());
    match words.is_empty() {
        true => String::new(),
        false => format!(":{}", words.join(",")),
    }
}

/// The mount propagation modes of a bind.
pub const PROPAGATIONS: &[&str] = &[
    "rprivate", "private", "rshared", "shared", "rslave", "slave",
];

impl Mount {
    pub fn target(&self) -> &str {
        match self {
            Mount::Volume { target, .. }
            | Mount::Bind { target, .. }
            | Mount::Anonymous { target } => target,
        }
    }
}

/// A published port mapping (a range maps host and container ports pairwise).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    pub host_ip: Option<String>,
    /// Empty: Docker picks the host ports.
    pub host_ports: Vec<u16>,
    pub container_ports: Vec<u16>,
    pub protocol: String,
}

impl Port {
    /// (host port, container port) pairs.
    pub fn pairs(&self) -> impl Iterator<Item = (Option<u16>, u16)> + '_ {
        self.container_ports
            .iter()
            .enumerate()
            .map(|(index, container)| (self.host_ports.get(index).copied(), *container))
    }
}

impl std::fmt::Display for Port {
    /// Compose short syntax: `[ip:][host:]container[/protocol]`, ranges as `a-b`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn range(ports: &[u16]) -> String {
            match (ports.first(), ports.last()) {
                (Some(first), Some(last)) if first != last => format!("{first}-{last}"),
                (Some(first), _) => first.to_string(),
                _ => String::new(),
            }
        }
        match &self.host_ip {
            Some(ip) if ip.contains(':') => write!(f, "[{ip}]:")?,
            Some(ip) => write!(f, "{ip}:")?,
            None => {}
        }
        if !self.host_ports.is_empty() || self.host_ip.is_some() {
            write!(f, "{}:", range(&self.host_ports))?;
        }
        f.write_str(&range(&self.container_ports))?;
        if self.protocol != "tcp" {
            write!(f, "/{}", self.protocol)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub probe: Probe,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Probe {
    /// An HTTP GET of the container's port and path.
    Http { port: u16, path: String },
    /// A shell command run in the container.
    Cmd(String),
    /// A program and its arguments, run without a shell.
    Exec(Vec<String>),
}

impl Probe {
    /// Docker's `test` for this probe: `["CMD-SHELL", command]` or `["CMD", argv…]`.
    pub fn test(&self) -> Vec<String> {
        match self {
            Probe::Http { port, path } => vec!["CMD-SHELL".into(), http_probe(*port, path)],
            Probe::Cmd(command) => vec!["CMD-SHELL".into(), command.clone()],
            Probe::Exec(argv) => std::iter::once("CMD".to_string())
                .chain(argv.iter().cloned())
                .collect(),
        }
    }

    /// What runs in the container, as Docker runs it: a shell form under `/bin/sh -c`.
    pub fn argv(&self) -> Vec<String> {
        let mut test = self.test();
        match test.remove(0).as_str() {
            "CMD-SHELL" => vec!["/bin/sh".into(), "-c".into(), test.remove(0)],
            _ => test,
        }
    }
}

/// A probe that works in images with busybox `wget` or with `curl`.
pub fn http_probe(port: u16, path: &str) -> String {
    let url = format!("http://127.0.0.1:{port}{path}");
    format!("wget -q -O /dev/null '{url}' || curl -fsS -o /dev/null '{url}' || exit 1")
}

/// Secret values by their `.env` variable name. Never printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets(pub BTreeMap<String, String>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Secrets {
    /// `KEY=VALUE` for a container's environment, sorted; a secret missing here is left
    /// out (the caller checked the bundle's `.env` exists).
    pub fn environment(&self, env: &BTreeMap<String, EnvValue>) -> Vec<String> {
        env.iter()
            .filter_map(|(key, value)| match value {
                EnvValue::Plain(text) => Some(format!("{key}={text}")),
                EnvValue::Secret(var) => self.0.get(var).map(|v| format!("{key}={v}")),
            })
            .collect()
    }

    /// Parse the text of a bundle's `.env`, which stack wrote.
    pub fn parse(source: &str, bytes: &[u8]) -> crate::error::Result<Secrets> {
        let entries = crate::project::syntax::parse(source, bytes).map_err(|_| {
            crate::error::Error::outside(format!("`{source}` is not a secrets file stack wrote"))
        })?;
        let mut out = BTreeMap::new();
        for entry in entries {
            let mut text = String::new();
            for piece in &entry.value.pieces {
                match piece {
                    crate::project::syntax::Piece::Literal(literal) => text.push_str(literal),
                    // stack escapes every `$` it writes there; keep one it did not.
                    crate::project::syntax::Piece::Var(var) => {
                        text.push('$');
                        text.push_str(&var.name);
                    }
                }
            }
            out.insert(entry.key, text);
        }
        Ok(Secrets(out))
    }
}
