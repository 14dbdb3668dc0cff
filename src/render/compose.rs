//! `docker-compose.yml`: built as a value and serialised, so quoting is never a guess.
//! Every string goes through [`esc`], because Compose interpolates `$` in the file.

use serde_json::{json, Map, Value};

use super::{header, relative};
use crate::config::values::compose_duration;
use crate::error::{Error, Result};
use crate::model::{
    self, BundleSecrets, Desired, DesiredService, EnvValue, HostPath, Mount, MountOptions,
    Placement, Port,
};

/// Compose interpolates `$VAR`; a literal `$` is written `$$`.
pub fn esc(text: &str) -> String {
    text.replace('$', "$$")
}

pub fn render(desired: &Desired, secrets: &BundleSecrets, placement: &Placement) -> Result<String> {
    let override_only = override_vars(secrets);
    let mut services = Map::new();
    for service in &desired.services {
        let mut rendered = render_service(service, placement);
        // A secret Compose cannot read exactly from `.env` is set by the override file.
        if let Some(Value::Object(env)) = rendered.get_mut("environment") {
            env.retain(|_, v| {
                !v.as_str()
                    .and_then(|t| t.strip_prefix("${")?.strip_suffix('}'))
                    .is_some_and(|var| override_only.contains(var))
            });
            if env.is_empty() {
                rendered.as_object_mut().map(|o| o.remove("environment"));
            }
        }
        services.insert(service.name.clone(), rendered);
    }
    let mut doc = Map::new();
    doc.insert("name".into(), json!(desired.project));
    doc.insert("services".into(), Value::Object(services));
    let mut networks = Map::new();
    for network in desired.all_networks() {
        let mut spec = Map::new();
        spec.insert("name".into(), json!(desired.network_name(&network.name)));
        if network.external {
            spec.insert("external".into(), json!(true));
            networks.insert(network.name.clone(), Value::Object(spec));
            continue;
        }
        if network.internal {
            spec.insert("internal".into(), json!(true));
        }
        if desired.encrypt {
            // Only with `STACK_TARGET=swarm` (the configuration refuses it otherwise).
            spec.insert("driver".into(), json!("overlay"));
            spec.insert("driver_opts".into(), json!({ "encrypted": "true" }));
        }
        networks.insert(network.name.clone(), Value::Object(spec));
    }
    doc.insert("networks".into(), Value::Object(networks));
    let mut secrets = Map::new();
    for file in desired.services.iter().flat_map(|s| &s.secret_files) {
        secrets.insert(
            secret_name(file),
            json!({"file": format!("./{}", file.bundle_path())}),
        );
    }
    if !secrets.is_empty() {
        doc.insert("secrets".into(), Value::Object(secrets));
    }
    if !desired.volumes.is_empty() {
        let mut map = Map::new();
        for volume in &desired.volumes {
            map.insert(volume.clone(), json!({}));
        }
        doc.insert("volumes".into(), Value::Object(map));
    }
    let yaml = serde_norway::to_string(&Value::Object(doc))
        .map_err(|e| Error::outside(format!("cannot serialise docker-compose.yml: {e}")))?;
    Ok(format!(
        "# {}\n{}",
        header(desired),
        quote_yaml11_booleans(&yaml)
    ))
}

/// The serialiser writes YAML 1.2, where `yes`, `no`, `on`, `off`, `y` and `n` are plain
/// strings; Compose v1 (PyYAML) reads YAML 1.1, where they are booleans, and refuses
/// `command: [redis-server, --appendonly, yes]` or `restart: no`. Every value of this
/// document that is a boolean is written `true`/`false`, so such a plain scalar is always
/// a string: quote it. Only whole scalars on their own (`- x`, `key: x`, `x:`) are plain
/// here; anything else the serialiser already quoted.
fn quote_yaml11_booleans(yaml: &str) -> String {
    fn ambiguous(word: &str) -> bool {
        matches!(
            word.to_ascii_lowercase().as_str(),
            "y" | "yes" | "n" | "no" | "on" | "off"
        )
    }
    let mut out = String::with_capacity(yaml.len() + 16);
    // Inside a block scalar (`key: |-`), lines are text, not scalars.
    let mut block: Option<usize> = None;
    for line in yaml.lines() {
        let indent = line.len() - line.trim_start().len();
        if let Some(parent) = block {
            if indent > parent || line.trim().is_empty() {
                out.push_str(line);
                out.push('\n');
                continue;
            }
            block = None;
        }
        if ["|", "|-", "|+", ">", ">-", ">+"]
            .iter()
            .any(|style| line.ends_with(&format!(" {style}")))
        {
            block = Some(indent);
        }
        let (lead, rest) = line.split_at(indent);
        let (dash, rest) = match rest.strip_prefix("- ") {
            Some(after) => ("- ", after),
            None => ("", rest),
        };
        out.push_str(lead);
        out.push_str(dash);
        match rest.split_once(": ") {
            Some((key, value)) => {
                push_scalar(&mut out, key, ambiguous(key));
                out.push_str(": ");
                push_scalar(&mut out, value, ambiguous(value));
            }
            None => match rest.strip_suffix(':') {
                Some(key) => {
                    push_scalar(&mut out, key, ambiguous(key));
                    out.push(':');
                }
                None => push_scalar(&mut out, rest, ambiguous(rest)),
            },
        }
        out.push('\n');
    }
    out
}

fn push_scalar(out: &mut String, text: &str, quote: bool) {
    if quote {
        out.push('\'');
        out.push_str(text);
        out.push('\'');
    } else {
        out.push_str(text);
    }
}

fn strings(items: impl IntoIterator<Item = String>) -> Value {
    Value::Array(items.into_iter().map(|item| json!(esc(&item))).collect())
}

/// One service of the compose file: the mapping of [`DesiredService`] to Compose.
/// `restart`; a scheduled job is in the profile `job` instead, so `docker compose up`
/// leaves it out (Compose 1.28+ and v2 read `profiles`), `docker compose run` runs it
/// once, and nothing restarts it.
fn restart(out: &mut Map<String, Value>, service: &DesiredService) {
    if service.schedule.is_some() {
        out.insert("profiles".into(), json!(["job"]));
        out.insert("restart".into(), json!("no"));
    } else {
        out.insert("restart".into(), json!(service.restart.to_string()));
    }
}

fn render_service(service: &DesiredService, placement: &Placement) -> Value {
    let mut out = Map::new();
    out.insert("image".into(), json!(esc(&service.image)));
    if let Some(build) = &service.build {
        out.insert("build".into(), build_section(build));
    }
    if let Some(platform) = &service.options.platform {
        out.insert("platform".into(), json!(platform.to_string()));
    }
    if let Some(entrypoint) = &service.options.entrypoint {
        out.insert("entrypoint".into(), strings(entrypoint.iter().cloned()));
    }
    if let Some(command) = &service.command {
        out.insert("command".into(), strings(command.iter().cloned()));
    }
    if !service.env.is_empty() {
        out.insert("environment".into(), environment(service));
    }
    if !service.ports.is_empty() {
        out.insert("ports".into(), strings(service.ports.iter().map(port)));
    }
    if !service.expose.is_empty() {
        let ports = service.expose.iter().map(|p| p.to_string());
        out.insert("expose".into(), json!(ports.collect::<Vec<_>>()));
    }
    if !service.mounts.is_empty() {
        let options = |m: &Mount| service.options.mount_options.get(m.target());
        let mounts = service
            .mounts
            .iter()
            .map(|m| mount(m, options(m), placement));
        out.insert("volumes".into(), strings(mounts));
    }
    if !service.extra_hosts.is_empty() {
        let hosts = service.extra_hosts.iter().map(|h| h.to_string());
        out.insert("extra_hosts".into(), strings(hosts));
    }
    if let Some(networks) = networks(service) {
        out.insert("networks".into(), networks);
    }
    if !service.secret_files.is_empty() {
        // Compose (v1 and v2) bind-mounts a file secret as it is on the host, and warns
        // about `mode` outside swarm: the bundle file has the mode.
        let secrets = service
            .secret_files
            .iter()
            .map(|file| json!({"source": secret_name(file), "target": file.target}));
        out.insert("secrets".into(), Value::Array(secrets.collect()));
    }
    options(&mut out, &service.options);
    super::host_options::host_options(&mut out, &service.options);
    if !service.depends_on.is_empty() {
        out.insert("depends_on".into(), depends_on(service));
    }
    if let Some(health) = &service.health {
        out.insert("healthcheck".into(), healthcheck(health));
    }
    restart(&mut out, service);
    if let Some(deploy) = deploy(service) {
        out.insert("deploy".into(), deploy);
    }
    let (driver, log_options) = service.log_driver();
    let mut logging = json!({ "driver": driver });
    if !log_options.is_empty() {
        let options: Map<String, Value> = log_options
            .into_iter()
            .map(|(k, v)| (k, json!(v)))
            .collect();
        logging["options"] = Value::Object(options);
    }
    out.insert("logging".into(), logging);
    let labels: Map<String, Value> = service
        .labels
        .iter()
        .map(|(key, value)| (key.clone(), json!(esc(value))))
        .collect();
    out.insert("labels".into(), Value::Object(labels));
    Value::Object(out)
}

/// `networks:` — a list, or a map when the service has aliases (Compose's aliases are
/// per network: the same on each); nothing for the default network alone.
fn networks(service: &DesiredService) -> Option<Value> {
    if service.options.network_mode.is_some() {
        return None;
    }
    if !service.options.aliases.is_empty() {
        let aliases = json!({ "aliases": service.options.aliases });
        let networks = service
            .networks
            .iter()
            .map(|n| (n.clone(), aliases.clone()));
        Some(Value::Object(networks.collect()))
    } else if service.networks != [crate::config::DEFAULT_NETWORK] {
        Some(json!(service.networks))
    } else {
        None
    }
}

/// `build:` — the context is absolute: images are built where `stack` runs, never on a
/// server, and Compose checks that the context exists.
fn build_section(build: &crate::model::BuildSpec) -> Value {
    let mut map = Map::new();
    map.insert(
        "context".into(),
        json!(esc(&build.context.to_string_lossy())),
    );
    if let Some(dockerfile) = &build.dockerfile {
        map.insert("dockerfile".into(), json!(esc(dockerfile)));
    }
    if let Some(target) = &build.target {
        map.insert("target".into(), json!(esc(target)));
    }
    if !build.args.is_empty() {
        let args: Map<String, Value> = build
            .args
            .iter()
            .map(|(key, value)| (key.clone(), json!(esc(value))))
            .collect();
        map.insert("args".into(), Value::Object(args));
    }
    Value::Object(map)
}

/// `environment:` — a secret is interpolated by Compose from the bundle's 0600 `.env`
/// file, so its value never appears here.
fn environment(service: &DesiredService) -> Value {
    let map: Map<String, Value> = service
        .env
        .iter()
        .map(|(key, value)| {
            let text = match value {
                EnvValue::Secret(var) => format!("${{{var}}}"),
                EnvValue::Plain(text) => esc(text),
            };
            (key.clone(), json!(text))
        })
        .collect();
    Value::Object(map)
}

fn depends_on(service: &DesiredService) -> Value {
    let map: Map<String, Value> = service
        .depends_on
        .iter()
        .map(|dependency| {
            let condition = if dependency.completed {
                "service_completed_successfully"
            } else if dependency.healthy {
                "service_healthy"
            } else {
                "service_started"
            };
            (dependency.service.clone(), json!({"condition": condition}))
        })
        .collect();
    Value::Object(map)
}

pub(crate) fn healthcheck(health: &crate::model::Health) -> Value {
    json!({
        "test": health.probe.test().iter().map(|word| esc(word)).collect::<Vec<_>>(),
        "interval": compose_duration(health.interval),
        "timeout": compose_duration(health.timeout),
        "retries": health.retries,
        "start_period": compose_duration(health.start_period),
    })
}

/// The container options but the platform and entrypoint (written with the image).
fn options(out: &mut Map<String, Value>, options: &model::ContainerOptions) {
    if let Some(user) = &options.user {
        out.insert("user".into(), json!(esc(&user.to_string())));
    }
    if let Some(workdir) = &options.workdir {
        out.insert("working_dir".into(), json!(esc(workdir)));
    }
    if let Some(hostname) = &options.hostname {
        out.insert("hostname".into(), json!(hostname));
    }
    if let Some(signal) = &options.stop_signal {
        out.insert("stop_signal".into(), json!(signal.0));
    }
    if let Some(grace) = options.stop_grace {
        out.insert("stop_grace_period".into(), json!(compose_duration(grace)));
    }
    for (key, caps) in [
        ("cap_add", &options.cap_add),
        ("cap_drop", &options.cap_drop),
    ] {
        if !caps.is_empty() {
            out.insert(key.into(), strings(caps.iter().map(|c| c.to_string())));
        }
    }
    if options.read_only {
        out.insert("read_only".into(), json!(true));
    }
    if !options.security_opt.is_empty() {
        out.insert("security_opt".into(), json!(options.security_opt));
    }
    if !options.group_add.is_empty() {
        out.insert("group_add".into(), json!(options.group_add));
    }
    for (key, set) in [
        ("privileged", options.privileged),
        ("tty", options.tty),
        ("stdin_open", options.stdin_open),
    ] {
        if set {
            out.insert(key.into(), json!(true));
        }
    }
    if !options.tmpfs.is_empty() {
        let tmpfs = options.tmpfs.iter().map(|t| match t.options() {
            o if o.is_empty() => t.path.clone(),
            o => format!("{}:{o}", t.path),
        });
        out.insert("tmpfs".into(), strings(tmpfs));
    }
    if !options.sysctls.is_empty() {
        let sysctls: Map<String, Value> = options
            .sysctls
            .iter()
            .map(|(key, value)| (key.clone(), json!(esc(value))))
            .collect();
        out.insert("sysctls".into(), Value::Object(sysctls));
    }
    if !options.ulimits.is_empty() {
        let ulimits: Map<String, Value> = options
            .ulimits
            .iter()
            .map(|u| {
                let limit = if u.soft == u.hard {
                    json!(u.soft)
                } else {
                    json!({"soft": u.soft, "hard": u.hard})
                };
                (u.name.clone(), limit)
            })
            .collect();
        out.insert("ulimits".into(), Value::Object(ulimits));
    }
    if options.init {
        out.insert("init".into(), json!(true));
    }
    if let Some(shm) = options.shm_mb {
        out.insert("shm_size".into(), json!(format!("{shm}m")));
    }
}

/// `deploy:` with replicas and resource limits, `None` when there is nothing to say.
fn deploy(service: &DesiredService) -> Option<Value> {
    let mut deploy = Map::new();
    if service.replicas != 1 {
        deploy.insert("replicas".into(), json!(service.replicas));
    }
    let mut limits = Map::new();
    if let Some(memory) = service.resources.memory_mb {
        limits.insert("memory".into(), json!(format!("{memory}M")));
    }
    if let Some(cpus) = service.resources.cpus {
        limits.insert("cpus".into(), json!(format!("{cpus}")));
    }
    let mut resources = Map::new();
    if !limits.is_empty() {
        resources.insert("limits".into(), Value::Object(limits));
    }
    if let Some(gpus) = service.options.gpus {
        let count = match gpus {
            model::Gpus::All => json!("all"),
            model::Gpus::Count(count) => json!(count),
        };
        resources.insert(
            "reservations".into(),
            json!({"devices": [{"driver": "nvidia", "count": count, "capabilities": ["gpu"]}]}),
        );
    }
    if !resources.is_empty() {
        deploy.insert("resources".into(), Value::Object(resources));
    }
    if !service.options.placement.is_empty() {
        deploy.insert(
            "placement".into(),
            json!({"constraints": service.options.placement}),
        );
    }
    (!deploy.is_empty()).then_some(Value::Object(deploy))
}

/// Compose short syntax of a port mapping: `[ip:][host:]container[/protocol]`.
fn port(port: &Port) -> String {
    let range = |ports: &[u16]| match ports {
        [] => String::new(),
        [one] => one.to_string(),
        [first, .., last] => format!("{first}-{last}"),
    };
    let mut out = String::new();
    if let Some(ip) = &port.host_ip {
        if ip.contains(':') {
            out.push_str(&format!("[{ip}]:"));
        } else {
            out.push_str(&format!("{ip}:"));
        }
    }
    if !port.host_ports.is_empty() || port.host_ip.is_some() {
        out.push_str(&format!("{}:", range(&port.host_ports)));
    }
    out.push_str(&range(&port.container_ports));
    if port.protocol != "tcp" {
        out.push_str(&format!("/{}", port.protocol));
    }
    out
}

/// Compose short syntax of a mount; host paths relative to the bundle where they share
/// a folder with it.
fn mount(mount: &Mount, options: Option<&MountOptions>, placement: &Placement) -> String {
    let (spec, read_only) = match mount {
        Mount::Volume {
            name,
            target,
            read_only,
        } => (format!("{name}:{target}"), *read_only),
        Mount::Bind {
            source,
            target,
            read_only,
        } => {
            // Compose has no reload in place: it binds the bundle's own file.
            let host = match source {
                HostPath::Proxy(rel) => placement.bundle.join(rel),
                _ => placement.resolve(source),
            };
            let rel = relative(&placement.bundle, &host);
            let text = rel.to_string_lossy().into_owned();
            let source = if rel.is_absolute() || text.starts_with("..") {
                text
            } else {
                format!("./{text}")
            };
            (format!("{source}:{target}"), *read_only)
        }
        Mount::Anonymous { target } => (target.clone(), false),
    };
    format!("{spec}{}", model::mount_suffix(read_only, options))
}

/// The Compose name of a secret file (`DB_PASSWORD` → `db_password`, or
/// `db_password_444` for the copy a service's non-root user reads).
fn secret_name(file: &model::SecretFile) -> String {
    let name = file.key.to_ascii_lowercase();
    if file.mode == 0o400 {
        name
    } else {
        format!("{name}_{:o}", file.mode)
    }
}

/// The bundle's `.env`: every secret container variable, `None` when there are none.
pub fn secrets_file(desired: &Desired, secrets: &BundleSecrets) -> Option<String> {
    let mut lines: String = secrets
        .entries
        .iter()
        .map(|(var, value)| format!("{var}={}\n", crate::config::values::env_file_value(value)))
        .collect();
    // The notification endpoints reach the server's `stack supervise` here (0600).
    if let Some(items) = &secrets.notify {
        let value = crate::config::values::env_file_value(items);
        lines.push_str(&format!("{}={value}\n", crate::config::notify::KEY));
    }
    if lines.is_empty() {
        return None;
    }
    Some(format!(
        "# {}\n# Secret values, read by Compose for interpolation. Keep this file mode 0600.\n{lines}",
        header(desired),
    ))
}

/// The `.env` variables of secrets docker-compose cannot read back exactly from `.env`
/// (a `${` among them): Compose gets them from [`override_file`].
fn override_vars(secrets: &BundleSecrets) -> std::collections::BTreeSet<String> {
    secrets
        .entries
        .iter()
        .filter(|(_, value)| !crate::config::values::compose_reads_exactly(value))
        .map(|(var, _)| var.clone())
        .collect()
}

/// `docker-compose.override.yml` (0600, read by Compose after docker-compose.yml): the
/// secret container variables `.env` cannot carry to Compose, each `$` written `$$`.
pub fn override_file(desired: &Desired, secrets: &BundleSecrets) -> Result<Option<String>> {
    let vars = override_vars(secrets);
    if vars.is_empty() {
        return Ok(None);
    }
    let secrets = secrets.values();
    let mut services = Map::new();
    for service in &desired.services {
        let env: Map<String, Value> = service
            .env
            .iter()
            .filter_map(|(key, value)| match value {
                EnvValue::Secret(var) if vars.contains(var) => {
                    Some((key.clone(), json!(esc(secrets.0.get(var)?))))
                }
                _ => None,
            })
            .collect();
        if !env.is_empty() {
            services.insert(service.name.clone(), json!({ "environment": env }));
        }
    }
    if services.is_empty() {
        return Ok(None);
    }
    let yaml = serde_norway::to_string(&json!({ "services": services }))
        .map_err(|e| Error::outside(format!("cannot serialise the Compose override: {e}")))?;
    Ok(Some(format!(
        "# {}\n# Secret values docker-compose cannot read exactly from `.env` (they hold `${{`). Keep this file mode 0600.\n{yaml}",
        header(desired),
    )))
}

#[cfg(test)]
mod yaml11 {
    #[test]
    fn yaml_1_1_booleans_are_quoted_and_nothing_else_changes() {
        let yaml = "restart: no\ncommand:\n- redis-server\n- --appendonly\n- yes\nenvironment:\n  on: off\n  Y: n\n  ok: 'no'\n  NO_PROXY: nothing\n  TEXT: |-\n    yes\n    no\n  after: y\n";
        assert_eq!(
            super::quote_yaml11_booleans(yaml),
            "restart: 'no'\ncommand:\n- redis-server\n- --appendonly\n- 'yes'\nenvironment:\n  'on': 'off'\n  'Y': 'n'\n  ok: 'no'\n  NO_PROXY: nothing\n  TEXT: |-\n    yes\n    no\n  after: 'y'\n"
        );
    }
}
