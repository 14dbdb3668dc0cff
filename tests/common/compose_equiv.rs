//! Are two Compose files equivalent, service by service? Both are first read by Debian's
//! `docker-compose config` (v1: interpolation done, `.env` read, relative paths made
//! absolute; fed a JSON copy, so YAML 1.1's `yes`/`no` booleans cannot turn a string into
//! a boolean), then each service is reduced to what it runs:
//!
//! image or build (context, dockerfile, target, args), command, entrypoint, environment,
//! published ports, mounts (source, target, read-only), tmpfs, health check, dependencies and
//! their conditions, restart, user, working directory, capabilities, read-only root, init,
//! stop signal and grace, sysctls, ulimits, extra hosts, shared memory, platform, labels,
//! privileged, tty, stdin_open, security options, the log driver and its options where the
//! original sets `logging`,
//! networks (and which are internal or external, an external one by its engine name), the
//! host names the service answers to (name, aliases, `container_name`, `links` aliases:
//! the rendered file must answer at least the original's), replicas, memory and CPU limits, secrets (target
//! paths and the files' contents).
//!
//! The equivalences allowed (each one is what stack does on purpose):
//! - the rendered file may have more labels (stack's `dev.stack.*`), a `logging` section,
//!   `expose`, a named default network, and one more service: the `proxy` stack runs
//!   for routes;
//! - a service the import renamed (a preset's or the proxy's name) is compared under its
//!   new name;
//! - a built service's image tag is stack's own (`<project>-<service>:<env>`): its build
//!   is compared, not its tag;
//! - a health check keeps its form (exec `CMD` or shell `CMD-SHELL`); `["CMD", "/bin/sh",
//!   "-c", x]` equals `["CMD-SHELL", x]`, which is how Docker runs it, and a plain string
//!   is `CMD-SHELL`; missing timings, and timings of 0, are Docker's defaults (30s, 30s,
//!   3, 0s);
//! - `command: []` without an entrypoint equals no command (the engine runs the image's);
//! - with an entrypoint, its words and the command's are compared as one list, which is
//!   what Docker runs;
//! - a command or entrypoint `["/bin/sh", "-c", "exec …"]` (how the import passes secrets)
//!   equals the words that shell runs, its `$VAR`s read from the service's environment,
//!   which may hold those variables besides the original's; an official image's
//!   `docker-entrypoint.sh` and its server's name before an option (`redis-server
//!   --requirepass x` = `--requirepass x`) are what the image runs anyway;
//! - `depends_on` `service_started` on a dependency that has a health check equals
//!   `service_healthy` (stack's `DEPENDS_ON` means ready);
//! - a secret file's content may differ by one trailing line break;
//! - durations and sizes are compared as numbers (`1m30s` = `90s`, `1g` = `1024m`);
//! - an `extra_hosts` entry equals itself without spaces around its host and address,
//!   which the engine trims;
//! - a bind-mounted file is compared by its content (a config's `content` is a file the
//!   import writes into the project).

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::{json, Map, Value};

/// `docker-compose config` of `file` (run in its folder, so `.env` beside it is read), with
/// a clean environment. Compose v1 predates the top-level `name:`; a copy without it is
/// read instead.
pub fn config(file: &Path) -> Result<Value, String> {
    with_copy(file, |copy, dir| {
        let output = Command::new("docker-compose")
            .arg("-f")
            .arg(copy)
            .arg("--project-directory")
            .arg(dir)
            .arg("config")
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::var_os("HOME").unwrap_or_default())
            .output()
            .map_err(|e| format!("cannot run docker-compose: {e}"))?;
        match output.status.success() {
            true => Ok(String::from_utf8_lossy(&output.stdout).into_owned()),
            false => Err(String::from_utf8_lossy(&output.stderr).into_owned()),
        }
    })
}

/// The copy of `file` that docker-compose v1 reads (beside it: JSON, without `name:`),
/// given to `run` with the folder; the document its `config` printed, or its error.
fn with_copy(
    file: &Path,
    run: impl FnOnce(&Path, &Path) -> Result<String, String>,
) -> Result<Value, String> {
    let dir = file.parent().unwrap();
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut yaml: serde_norway::Value =
        serde_norway::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    yaml.apply_merge()
        .map_err(|e| format!("{}: {e}", file.display()))?;
    let mut doc: Value = serde_json::to_value(&yaml).map_err(|e| e.to_string())?;
    if let Some(map) = doc.as_object_mut() {
        map.remove("name");
    }
    // JSON is YAML too, and its quoted strings keep `no` and `yes` strings for v1's YAML 1.1.
    let copy = dir.join(".equiv-compose-v1.yml");
    std::fs::write(&copy, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let printed = run(&copy, dir);
    let _ = std::fs::remove_file(&copy);
    let printed = printed
        .map_err(|stderr| format!("docker-compose config {} failed: {stderr}", file.display()))?;
    serde_norway::from_str(&printed).map_err(|e| format!("config output: {e}"))
}

/// One docker-compose v1 kept running for many `config`s (`tests/data/compose_config.py`:
/// compose's own functions of the command, in the interpreter of the `docker-compose`
/// script): a file's Python start-up and imports, about 0.5 CPU-seconds, are paid once.
/// [`Configs::config`] answers as [`config`] does.
pub struct Configs {
    child: std::process::Child,
    input: std::process::ChildStdin,
    output: std::io::BufReader<std::process::ChildStdout>,
}

impl Configs {
    /// Start it; `None` when `docker-compose` is not a Python script, or when
    /// `STACK_COMPOSE_PER_FILE` is set (to compare with the command run per file): then
    /// use [`config`].
    pub fn start() -> Option<Configs> {
        if std::env::var_os("STACK_COMPOSE_PER_FILE").is_some() {
            return None;
        }
        let script = crate::common::require_tool("docker-compose");
        let text = std::fs::read_to_string(script).ok()?;
        let interpreter = text.lines().next()?.strip_prefix("#!")?.trim();
        if !interpreter.contains("python") || interpreter.contains(' ') {
            return None;
        }
        let mut child = Command::new(interpreter)
            .arg(crate::common::repo_root().join("tests/data/compose_config.py"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::var_os("HOME").unwrap_or_default())
            .spawn()
            .ok()?;
        let input = child.stdin.take()?;
        let output = std::io::BufReader::new(child.stdout.take()?);
        Some(Configs {
            child,
            input,
            output,
        })
    }

    /// `docker-compose config` of `file`, as [`config`].
    pub fn config(&mut self, file: &Path) -> Result<Value, String> {
        use std::io::{BufRead, Write};
        with_copy(file, |copy, dir| {
            let request = json!({"file": copy, "dir": dir}).to_string();
            writeln!(self.input, "{request}").map_err(|e| format!("compose_config.py: {e}"))?;
            let mut line = String::new();
            self.output
                .read_line(&mut line)
                .map_err(|e| format!("compose_config.py: {e}"))?;
            let answer: Value = serde_json::from_str(&line)
                .map_err(|e| format!("compose_config.py answered {line:?}: {e}"))?;
            match answer["ok"].as_bool() {
                Some(true) => Ok(answer["out"].as_str().unwrap_or_default().to_string()),
                _ => Err(answer["err"].as_str().unwrap_or_default().to_string()),
            }
        })
    }
}

impl Drop for Configs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The differences between two `docker-compose config` documents, one line each; empty
/// when they are equivalent. `renamed` maps an original service name to the rendered one.
pub fn compare(
    original: &Value,
    rendered: &Value,
    renamed: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut out = Vec::new();
    let empty = Map::new();
    let services_a = original["services"].as_object().unwrap_or(&empty);
    let services_b = rendered["services"].as_object().unwrap_or(&empty);
    let name_of = |name: &str| {
        renamed
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_string())
    };
    let healthy_a: BTreeSet<String> = services_a
        .iter()
        .filter(|(_, s)| health(s).is_some())
        .map(|(n, _)| name_of(n))
        .collect();
    let mut seen = BTreeSet::new();
    for (name, a) in services_a {
        let target = name_of(name);
        seen.insert(target.clone());
        let Some(b) = services_b.get(&target) else {
            out.push(format!(
                "service `{name}`: missing from the rendered file (as `{target}`)"
            ));
            continue;
        };
        let mut na = normalise(a, original, renamed, &healthy_a);
        let mut nb = normalise(b, rendered, &BTreeMap::new(), &BTreeSet::new());
        na.insert("dns_names", dns_names(name, a, original));
        nb.insert("dns_names", dns_names(&target, b, rendered));
        // What the rendered side passes only for its shell to read is no difference.
        let used: Vec<String> = list(&nb["shell_vars"]);
        if let (Some(Value::Object(ea)), Some(Value::Object(eb))) =
            (na.get("environment").cloned(), nb.get_mut("environment"))
        {
            eb.retain(|k, _| ea.contains_key(k) || !used.contains(k));
        }
        na.remove("shell_vars");
        nb.remove("shell_vars");
        for (field, va) in &na {
            let vb = nb.get(field).unwrap_or(&Value::Null);
            let same = if *field == "labels" || *field == "dns_names" {
                subset(va, vb)
            } else if *field == "logging" {
                // Stack rotates every container; only a driver the original sets counts.
                va.is_null() || va == vb
            } else {
                va == vb
            };
            if !same {
                out.push(format!(
                    "service `{name}`: {field}: original {va}, rendered {vb}"
                ));
            }
        }
    }
    for name in services_b.keys() {
        if !seen.contains(name) && name != "proxy" {
            out.push(format!("service `{name}`: only in the rendered file"));
        }
    }
    let internal = |doc: &Value| -> BTreeMap<String, &'static str> {
        doc["networks"]
            .as_object()
            .map(|n| {
                n.iter()
                    .filter(|(k, _)| *k != "default")
                    .map(|(k, v)| match external_name(doc, k) {
                        Some(name) => (name, "external"),
                        None if v["internal"].as_bool().unwrap_or(false) => (k.clone(), "internal"),
                        None => (k.clone(), "bridge"),
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let (na, nb) = (internal(original), internal(rendered));
    if na != nb {
        out.push(format!("networks: original {na:?}, rendered {nb:?}"));
    }
    out
}

/// The log driver and its options (json-file's `max-size` in bytes, and stack's rotation
/// where it sets none); `null` without `logging`.
fn log_driver(logging: &Value) -> Value {
    if logging.is_null() {
        return Value::Null;
    }
    let driver = scalar(&logging["driver"]).unwrap_or_else(|| "json-file".into());
    let mut options: Map<String, Value> = logging["options"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), json!(scalar(v).unwrap_or_default())))
                .collect()
        })
        .unwrap_or_default();
    if driver == "json-file" {
        let option = |key: &str| options.get(key).and_then(scalar);
        let size = option("max-size").unwrap_or_else(|| "10m".into());
        let files = option("max-file").unwrap_or_else(|| "3".into());
        options.insert("max-size".into(), json!(bytes(&size)));
        options.insert("max-file".into(), json!(files));
    }
    json!({ "driver": driver, "options": options })
}

/// Official images whose entrypoint runs their server for a command that starts with an
/// option (`--requirepass x` is `redis-server --requirepass x`).
const SERVERS: &[(&str, &str)] = &[
    ("redis", "redis-server"),
    ("valkey", "valkey-server"),
    ("keydb", "keydb-server"),
    ("postgres", "postgres"),
    ("mysql", "mysqld"),
    ("mariadb", "mariadbd"),
    ("mongo", "mongod"),
    ("memcached", "memcached"),
];

/// `words` without an official image's server name before an option (the image's
/// entrypoint adds it back).
fn official_server_dropped(image: &Value, mut words: Vec<String>) -> Vec<String> {
    let image = scalar(image).unwrap_or_default();
    let name = image.rsplit('/').next().unwrap_or(&image);
    let name = name.split([':', '@']).next().unwrap_or(name);
    let server = SERVERS.iter().find(|(i, _)| *i == name).map(|(_, s)| *s);
    if server.is_some_and(|s| words.first().map(String::as_str) == Some(s))
        && words.get(1).is_some_and(|w| w.starts_with('-'))
    {
        words.remove(0);
    }
    words
}

/// `["/bin/sh", "-c", "exec …"]`: the words the shell runs, its `$VAR`s read from
/// `environment` (and which those were), an official image's `docker-entrypoint.sh`
/// left out.
fn unwrap_shell(value: &Value, environment: &Value) -> Option<(Vec<String>, BTreeSet<String>)> {
    let words = list(value);
    let [shell, flag, line] = words.as_slice() else {
        return None;
    };
    let rest = line.strip_prefix("exec ")?;
    if shell != "/bin/sh" || flag != "-c" {
        return None;
    }
    let mut vars = BTreeSet::new();
    let mut text = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            text.push(c);
            text.extend(chars.next());
            continue;
        }
        if c != '$' {
            text.push(c);
            continue;
        }
        let braced = chars.peek() == Some(&'{');
        if braced {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&n) = chars.peek() {
            if n.is_ascii_alphanumeric() || n == '_' {
                name.push(n);
                chars.next();
            } else {
                break;
            }
        }
        if braced {
            chars.next();
        }
        let value = environment[&name].as_str().unwrap_or_default();
        text.push_str(
            &value
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('$', "\\$"),
        );
        vars.insert(name);
    }
    let mut words = shell_words::split(&text).ok()?;
    if words.first().map(String::as_str) == Some("docker-entrypoint.sh") {
        words.remove(0);
    }
    Some((words, vars))
}

/// Every key of `a` (a mapping) is in `b` with the same value; every item of `a` (a
/// list) is in `b`.
fn subset(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(a), Value::Array(b)) => a.iter().all(|v| b.contains(v)),
        _ => match (a.as_object(), b.as_object()) {
            (Some(a), Some(b)) => a.iter().all(|(k, v)| b.get(k) == Some(v)),
            (Some(a), None) => a.is_empty(),
            _ => a == b,
        },
    }
}

/// The engine's name of the top-level network `key` when it is external.
fn external_name(doc: &Value, key: &str) -> Option<String> {
    let network = &doc["networks"][key];
    match &network["external"] {
        Value::Bool(true) => Some(scalar(&network["name"]).unwrap_or_else(|| key.to_string())),
        Value::Object(external) => Some(
            external
                .get("name")
                .and_then(scalar)
                .unwrap_or_else(|| key.to_string()),
        ),
        _ => None,
    }
}

/// The host names Docker's DNS answers with the containers of service `name`: its name,
/// its network aliases, its `container_name`, and the aliases other services' `links`
/// give it. The rendered file must answer at least the original's names. A service with
/// `network_mode` (`host`, `none`, `bridge`, `service:…`, `container:…`) joins no network
/// of the project, so Docker's DNS answers none of its names, whatever they are.
fn dns_names(name: &str, service: &Value, doc: &Value) -> Value {
    if service
        .get("network_mode")
        .is_some_and(|mode| !mode.is_null())
    {
        return json!([]);
    }
    let mut names = BTreeSet::from([name.to_string()]);
    if let Value::Object(networks) = &service["networks"] {
        for options in networks.values() {
            names.extend(list(&options["aliases"]));
        }
    }
    names.extend(scalar(&service["container_name"]));
    if let Some(services) = doc["services"].as_object() {
        for other in services.values() {
            for link in list(&other["links"]) {
                match link.split_once(':') {
                    Some((target, alias)) if target == name => {
                        names.insert(alias.to_string());
                    }
                    _ => {}
                }
            }
        }
    }
    json!(names)
}

/// One service reduced to what it runs, field by field.
fn normalise(
    service: &Value,
    doc: &Value,
    renamed: &BTreeMap<String, String>,
    healthy: &BTreeSet<String>,
) -> BTreeMap<&'static str, Value> {
    let mut out = BTreeMap::new();
    if service.get("build").is_some() {
        out.insert("build", build(&service["build"]));
    } else {
        out.insert("image", service["image"].clone());
    }
    let environment = pairs(&service["environment"]);
    // A command run through `/bin/sh -c 'exec …'` to read secrets from the environment
    // (stack's import) is compared as the words the shell runs.
    let shell = ["entrypoint", "command"]
        .into_iter()
        .find_map(|key| unwrap_shell(&service[key], &environment).map(|w| (key, w)));
    let mut shell_vars = BTreeSet::new();
    let mut service = service.clone();
    if let Some((key, (words, vars))) = shell {
        service[key] = json!(official_server_dropped(&service["image"], words));
        shell_vars = vars;
    } else if let Value::Array(words) = words(&service["command"]) {
        let words = words.iter().filter_map(scalar).collect();
        service["command"] = json!(official_server_dropped(&service["image"], words));
    }
    let service = &service;
    out.insert("shell_vars", json!(shell_vars));
    // An empty command without an entrypoint: moby runs the image's, as with none.
    let command = match words(&service["command"]) {
        Value::Array(items) if items.is_empty() && service["entrypoint"].is_null() => Value::Null,
        other => other,
    };
    // Docker runs the entrypoint's words then the command's: with an entrypoint, the two
    // are compared as that one list (the import's `/bin/sh -c 'exec …'` for a secret
    // joins them into the entrypoint).
    match (words(&service["entrypoint"]), command) {
        (Value::Array(mut entrypoint), command) if !entrypoint.is_empty() => {
            if let Value::Array(rest) = command {
                entrypoint.extend(rest);
            }
            out.insert("command", Value::Null);
            out.insert("entrypoint", Value::Array(entrypoint));
        }
        (entrypoint, command) => {
            out.insert("command", command);
            out.insert("entrypoint", entrypoint);
        }
    }
    out.insert("environment", pairs(&service["environment"]));
    out.insert("ports", ports(&service["ports"]));
    let (mounts, mut tmpfs) = mounts(&service["volumes"]);
    let mut mounts = list(&volumes_from(mounts, service, doc, 0));
    mounts.extend(config_mounts(service, doc));
    // A bind-mounted file is compared by its content: a config's `content`, which the
    // import writes into the project's `configs/` (and the lowering for v1 beside the
    // original), is the same file wherever it lies.
    for mount in &mut mounts {
        let parts: Vec<&str> = mount.splitn(3, '|').collect();
        if let ["bind", source, rest] = parts[..] {
            if let Ok(text) = std::fs::read_to_string(source) {
                *mount = format!("bind|content:{text}|{rest}");
            }
        }
    }
    mounts.sort();
    out.insert("volumes", json!(mounts));
    tmpfs.extend(list(&service["tmpfs"]).iter().map(|t| tmpfs_entry(t)));
    tmpfs.sort();
    out.insert("tmpfs", json!(tmpfs));
    let (check, vars) = health_in_environment(health(service), &environment);
    out.insert("healthcheck", check.unwrap_or(Value::Null));
    if let Some(Value::Array(all)) = out.get_mut("shell_vars") {
        all.extend(vars.into_iter().map(Value::String));
    }
    out.insert(
        "depends_on",
        depends_on(&service["depends_on"], renamed, healthy),
    );
    out.insert(
        "restart",
        json!(service["restart"].as_str().unwrap_or("no")),
    );
    for (field, key) in [
        ("user", "user"),
        ("working_dir", "working_dir"),
        ("hostname", "hostname"),
        ("stop_signal", "stop_signal"),
        ("platform", "platform"),
    ] {
        out.insert(
            field,
            scalar(&service[key])
                .map(Value::String)
                .unwrap_or(Value::Null),
        );
    }
    out.insert(
        "stop_grace_period",
        json!(scalar(&service["stop_grace_period"])
            .map(|d| millis(&d))
            .unwrap_or(10_000)),
    );
    for field in ["cap_add", "cap_drop"] {
        let caps: BTreeSet<String> = list(&service[field])
            .iter()
            .map(|c| {
                c.to_ascii_uppercase()
                    .trim_start_matches("CAP_")
                    .to_string()
            })
            .collect();
        out.insert(field, json!(caps));
    }
    out.insert(
        "read_only",
        json!(service["read_only"].as_bool().unwrap_or(false)),
    );
    out.insert("init", json!(service["init"].as_bool().unwrap_or(false)));
    for field in ["privileged", "tty", "stdin_open"] {
        out.insert(field, json!(service[field].as_bool().unwrap_or(false)));
    }
    let security: BTreeSet<String> = list(&service["security_opt"])
        .into_iter()
        .map(|o| o.replacen('=', ":", 1))
        .collect();
    out.insert("security_opt", json!(security));
    out.insert("logging", log_driver(&service["logging"]));
    out.insert("sysctls", pairs(&service["sysctls"]));
    out.insert("ulimits", ulimits(&service["ulimits"]));
    let hosts: BTreeSet<String> = match &service["extra_hosts"] {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}:{}", scalar(v).unwrap_or_default()))
            .collect(),
        other => list(other)
            .into_iter()
            .map(|h| h.replacen('=', ":", 1))
            .collect(),
    };
    // The engine trims the spaces around an address (moby's `ValidateIPAddress`).
    let hosts: BTreeSet<String> = hosts
        .iter()
        .map(|h| match h.split_once(':') {
            Some((host, ip)) => format!("{}:{}", host.trim(), ip.trim()),
            None => h.trim().to_string(),
        })
        .collect();
    out.insert("extra_hosts", json!(hosts));
    out.insert(
        "shm_size",
        scalar(&service["shm_size"])
            .map(|s| json!(bytes(&s)))
            .unwrap_or(Value::Null),
    );
    out.insert("labels", pairs(&service["labels"]));
    out.insert("networks", networks(&service["networks"], doc));
    let replicas = service["deploy"]["replicas"]
        .as_u64()
        .or_else(|| service["scale"].as_u64())
        .unwrap_or(1);
    out.insert("replicas", json!(replicas));
    let memory = scalar(&service["deploy"]["resources"]["limits"]["memory"])
        .or_else(|| scalar(&service["mem_limit"]));
    out.insert(
        "memory",
        memory.map(|m| json!(bytes(&m))).unwrap_or(Value::Null),
    );
    let cpus = scalar(&service["deploy"]["resources"]["limits"]["cpus"])
        .or_else(|| scalar(&service["cpus"]));
    out.insert(
        "cpus",
        cpus.and_then(|c| c.parse::<f64>().ok())
            .map(|c| json!(c))
            .unwrap_or(Value::Null),
    );
    out.insert("secrets", secrets(&service["secrets"], doc));
    host_fields(service, renamed, &mut out);
    out
}

/// The host and namespace keys (`devices`, `network_mode`, `dns*`, the cgroup knobs,
/// `pid`, `ipc`, …) and `group_add`, each in one form: a device as `host:container:perms`,
/// sizes in bytes, `service:NAME` under the rendered name, a limit `deploy` may hold
/// taken from there too.
fn host_fields(
    service: &Value,
    renamed: &BTreeMap<String, String>,
    out: &mut BTreeMap<&'static str, Value>,
) {
    let devices: Vec<String> = list(&service["devices"])
        .iter()
        .map(|d| {
            let parts: Vec<&str> = d.split(':').collect();
            let perms = |p: &str| !p.starts_with('/');
            match parts.as_slice() {
                [host] => format!("{host}:{host}:rwm"),
                [host, p] if perms(p) => format!("{host}:{host}:{p}"),
                [host, target] => format!("{host}:{target}:rwm"),
                _ => d.clone(),
            }
        })
        .collect();
    out.insert("devices", json!(devices));
    for key in ["dns", "dns_search", "dns_opt", "group_add"] {
        out.insert(key, json!(list(&service[key])));
    }
    let namespace = |key: &str| {
        scalar(&service[key]).map(|mode| match mode.split_once(':') {
            Some(("service", name)) => {
                format!("service:{}", renamed.get(name).map_or(name, String::as_str))
            }
            _ => mode,
        })
    };
    for key in ["network_mode", "pid", "ipc"] {
        out.insert(key, json!(namespace(key)));
    }
    let pids = scalar(&service["deploy"]["resources"]["limits"]["pids"])
        .or_else(|| scalar(&service["pids_limit"]));
    out.insert(
        "pids_limit",
        json!(pids.and_then(|p| p.parse::<i64>().ok())),
    );
    for key in ["cpu_shares", "oom_score_adj", "mem_swappiness"] {
        out.insert(
            key,
            json!(scalar(&service[key]).and_then(|n| n.parse::<i64>().ok())),
        );
    }
    let reservation = scalar(&service["deploy"]["resources"]["reservations"]["memory"])
        .or_else(|| scalar(&service["mem_reservation"]));
    out.insert("mem_reservation", json!(reservation.map(|m| bytes(&m))));
    let swap = scalar(&service["memswap_limit"]).map(|m| match m.as_str() {
        "-1" => json!(-1),
        _ => json!(bytes(&m)),
    });
    out.insert("memswap_limit", swap.unwrap_or(Value::Null));
    for key in ["cpuset", "domainname", "runtime", "userns_mode"] {
        out.insert(key, json!(scalar(&service[key])));
    }
    let mac = scalar(&service["mac_address"]).map(|m| m.to_ascii_lowercase());
    out.insert("mac_address", json!(mac));
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn list(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.iter().filter_map(scalar).collect(),
        other => scalar(other).into_iter().collect(),
    }
}

fn words(value: &Value) -> Value {
    match value {
        Value::String(s) => json!(shell_words::split(s).unwrap_or_else(|_| vec![s.clone()])),
        Value::Array(_) => json!(list(value)),
        _ => Value::Null,
    }
}

/// A mapping or a `KEY=VALUE` list as a sorted mapping of strings (no value: left out).
fn pairs(value: &Value) -> Value {
    let mut out = BTreeMap::new();
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if let Some(v) = scalar(v) {
                    out.insert(k.clone(), v);
                }
            }
        }
        Value::Array(items) => {
            for item in items.iter().filter_map(scalar) {
                if let Some((k, v)) = item.split_once('=') {
                    out.insert(k.to_string(), v.to_string());
                }
            }
        }
        _ => {}
    }
    json!(out)
}

fn build(value: &Value) -> Value {
    match value {
        Value::String(context) => {
            json!({"context": context, "dockerfile": "Dockerfile", "target": null, "args": {}})
        }
        _ => json!({
            "context": value["context"].as_str().unwrap_or("."),
            "dockerfile": value["dockerfile"].as_str().unwrap_or("Dockerfile"),
            "target": value["target"],
            "args": pairs(&value["args"]),
        }),
    }
}

/// Ports as `ip|published|target|protocol`, sorted.
fn ports(value: &Value) -> Value {
    let mut out: Vec<String> = Vec::new();
    let Value::Array(items) = value else {
        return json!(out);
    };
    for item in items {
        match item {
            Value::Object(_) => out.push(format!(
                "{}|{}|{}|{}",
                scalar(&item["host_ip"]).unwrap_or_default(),
                scalar(&item["published"]).unwrap_or_default(),
                scalar(&item["target"]).unwrap_or_default(),
                scalar(&item["protocol"]).unwrap_or_else(|| "tcp".into()),
            )),
            other => {
                let text = scalar(other).unwrap_or_default();
                let (body, protocol) = match text.split_once('/') {
                    Some((body, protocol)) => (body.to_string(), protocol.to_string()),
                    None => (text.clone(), "tcp".to_string()),
                };
                let parts: Vec<&str> = body.rsplitn(3, ':').collect();
                let (ip, published, target) = match parts.as_slice() {
                    [target] => ("", "", *target),
                    [target, published] => ("", *published, *target),
                    [target, published, ip] => (*ip, *published, *target),
                    _ => ("", "", ""),
                };
                out.push(format!("{ip}|{published}|{target}|{protocol}"));
            }
        }
    }
    out.sort();
    json!(out)
}

/// Mounts as `type|source|target|ro`, and tmpfs mounts from the long syntax.
/// `own` mounts (`kind|source|target|mode`) with those of each `volumes_from` service added
/// as Docker adds them: its named volumes and binds at their targets (read-only with `:ro`
/// or where the source's is), the service's own mount winning on a target. Anonymous
/// volumes and `container:` sources are left out (stack's import refuses them).
fn volumes_from(own: Value, service: &Value, doc: &Value, depth: usize) -> Value {
    let mut out: Vec<String> = list(&own);
    if depth > 8 {
        return json!(out);
    }
    for entry in list(&service["volumes_from"]) {
        // v1 writes `service:NAME:MODE` (or `container:NAME:MODE`); a file, `NAME[:MODE]`.
        let entry = entry.strip_prefix("service:").unwrap_or(&entry);
        let (name, mode) = entry.split_once(':').unwrap_or((entry, "rw"));
        let source = &doc["services"][name];
        if name == "container" || source.is_null() {
            continue;
        }
        let theirs = volumes_from(mounts(&source["volumes"]).0, source, doc, depth + 1);
        for mount in list(&theirs) {
            let parts: Vec<&str> = mount.split('|').collect();
            let [kind, from, target, their_mode] = parts[..] else {
                continue;
            };
            let taken = out.iter().any(|m| m.split('|').nth(2) == Some(target));
            if from.is_empty() || taken {
                continue;
            }
            let ro = mode == "ro" || their_mode == "ro";
            out.push(format!(
                "{kind}|{from}|{target}|{}",
                if ro { "ro" } else { "rw" }
            ));
        }
    }
    out.sort();
    json!(out)
}

/// A service's `configs` as the read-only file mounts Compose makes of them outside swarm
/// (`bind|file|target|ro`; a `content:` config by its text, which the import writes to a
/// file).
fn config_mounts(service: &Value, doc: &Value) -> Vec<String> {
    let Value::Array(entries) = &service["configs"] else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries {
        let (source, target) = match entry {
            Value::Object(_) => (scalar(&entry["source"]), scalar(&entry["target"])),
            other => (scalar(other), None),
        };
        let Some(source) = source else { continue };
        let target = target.unwrap_or_else(|| format!("/{source}"));
        let top = &doc["configs"][&source];
        let from = scalar(&top["file"])
            .or_else(|| scalar(&top["content"]).map(|c| format!("content:{c}")));
        out.push(format!("bind|{}|{target}|ro", from.unwrap_or_default()));
    }
    out
}

fn mounts(value: &Value) -> (Value, Vec<String>) {
    let mut out = Vec::new();
    let mut tmpfs = Vec::new();
    let Value::Array(items) = value else {
        return (json!(out), tmpfs);
    };
    for item in items {
        match item {
            Value::Object(_) => {
                let kind = item["type"].as_str().unwrap_or("volume");
                let target = scalar(&item["target"]).unwrap_or_default();
                if kind == "tmpfs" {
                    let size = scalar(&item["tmpfs"]["size"]);
                    tmpfs.push(tmpfs_entry(&match size {
                        Some(size) => format!("{target}:size={size}"),
                        None => target,
                    }));
                    continue;
                }
                let ro = item["read_only"].as_bool().unwrap_or(false);
                out.push(format!(
                    "{kind}|{}|{target}|{}",
                    scalar(&item["source"]).unwrap_or_default(),
                    if ro { "ro" } else { "rw" }
                ));
            }
            other => {
                let text = scalar(other).unwrap_or_default();
                let parts: Vec<&str> = text.split(':').collect();
                let (source, target, mode) = match parts.as_slice() {
                    [target] => ("", *target, ""),
                    [source, target] => (*source, *target, ""),
                    [source, target, mode, ..] => (*source, *target, *mode),
                    [] => ("", "", ""),
                };
                let kind = if source.starts_with('/') || source.starts_with('.') {
                    "bind"
                } else {
                    "volume"
                };
                let ro = mode.split(',').any(|m| m == "ro");
                out.push(format!(
                    "{kind}|{source}|{target}|{}",
                    if ro { "ro" } else { "rw" }
                ));
            }
        }
    }
    out.sort();
    (json!(out), tmpfs)
}

/// `path|size in bytes|mode` of a tmpfs entry `path[:size=…,mode=…]`.
fn tmpfs_entry(text: &str) -> String {
    let (path, options) = text.split_once(':').unwrap_or((text, ""));
    let mut size = String::new();
    let mut mode = String::new();
    for option in options.split(',') {
        if let Some(s) = option.strip_prefix("size=") {
            size = bytes(s).to_string();
        } else if let Some(m) = option.strip_prefix("mode=") {
            mode = m.trim_start_matches('0').to_string();
        }
    }
    format!("{path}|{size}|{mode}")
}

/// The health check as `{cmd, interval, timeout, retries, start_period}`, `None` when
/// there is none (or it is switched off).
/// A shell health check's `$$NAME` (`$NAME` for its shell) where the service's environment
/// sets NAME: the value, which is what the shell runs (stack's import reads a secret there
/// rather than writing it into the check); with the names read.
fn health_in_environment(
    check: Option<Value>,
    environment: &Value,
) -> (Option<Value>, Vec<String>) {
    let mut used = Vec::new();
    let Some(mut check) = check else {
        return (None, used);
    };
    if check["cmd"][0] != "CMD-SHELL" {
        return (Some(check), used);
    }
    let Some(text) = check["cmd"][1].as_str().map(str::to_string) else {
        return (Some(check), used);
    };
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("$$") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let braced = after.starts_with('{');
        let body = after.trim_start_matches('{');
        let len = body
            .find(|c: char| !(c == '_' || c.is_ascii_alphanumeric()))
            .unwrap_or(body.len());
        let name = &body[..len];
        let closed = !braced || body[len..].starts_with('}');
        match environment[name].as_str() {
            Some(value) if len > 0 && closed => {
                out.push_str(value);
                used.push(name.to_string());
                rest = &body[len + usize::from(braced)..];
            }
            _ => {
                out.push_str("$$");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    check["cmd"][1] = json!(out);
    (Some(check), used)
}

pub fn health(service: &Value) -> Option<Value> {
    let check = service.get("healthcheck")?;
    if check["disable"].as_bool() == Some(true) {
        return None;
    }
    let command = match &check["test"] {
        Value::String(s) => json!(["CMD-SHELL", s]),
        Value::Array(items) => {
            let words: Vec<String> = items.iter().filter_map(scalar).collect();
            match words.first().map(String::as_str) {
                // What Docker runs for `CMD-SHELL`: `/bin/sh -c` and every word after it.
                Some("CMD") if words.len() >= 4 && words[1..3] == ["/bin/sh", "-c"] => {
                    let rest = words[3..].iter().cloned();
                    json!(std::iter::once("CMD-SHELL".to_string())
                        .chain(rest)
                        .collect::<Vec<_>>())
                }
                Some("CMD" | "CMD-SHELL") => json!(words),
                _ => return None,
            }
        }
        _ => return None,
    };
    // 0 is the engine's default too (moby's `defaultProbe*`).
    let duration = |key: &str, default: u64| {
        scalar(&check[key])
            .map(|d| millis(&d))
            .filter(|ms| *ms != 0)
            .unwrap_or(default)
    };
    Some(json!({
        "cmd": command,
        "interval": duration("interval", 30_000),
        "timeout": duration("timeout", 30_000),
        "retries": check["retries"].as_u64().filter(|r| *r != 0).unwrap_or(3),
        "start_period": duration("start_period", 0),
    }))
}

fn depends_on(
    value: &Value,
    renamed: &BTreeMap<String, String>,
    healthy: &BTreeSet<String>,
) -> Value {
    let name_of = |name: &str| {
        renamed
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_string())
    };
    let mut out = BTreeMap::new();
    match value {
        Value::Array(items) => {
            for name in items.iter().filter_map(scalar) {
                out.insert(name_of(&name), "service_started".to_string());
            }
        }
        Value::Object(map) => {
            for (name, options) in map {
                let condition = options["condition"].as_str().unwrap_or("service_started");
                out.insert(name_of(name), condition.to_string());
            }
        }
        _ => {}
    }
    // stack waits for readiness: started on a service with a health check is healthy.
    for (name, condition) in out.iter_mut() {
        if condition == "service_started" && healthy.contains(name) {
            *condition = "service_healthy".into();
        }
    }
    json!(out)
}

fn ulimits(value: &Value) -> Value {
    let mut out = BTreeMap::new();
    if let Value::Object(map) = value {
        for (name, limit) in map {
            let pair = match limit {
                Value::Object(_) => (
                    scalar(&limit["soft"]).unwrap_or_default(),
                    scalar(&limit["hard"]).unwrap_or_default(),
                ),
                other => {
                    let v = scalar(other).unwrap_or_default();
                    (v.clone(), v)
                }
            };
            out.insert(name.clone(), format!("{}:{}", pair.0, pair.1));
        }
    }
    json!(out)
}

/// The networks a service joins, an external one by the engine's name.
fn networks(value: &Value, doc: &Value) -> Value {
    let names: BTreeSet<String> = match value {
        Value::Array(items) => items.iter().filter_map(scalar).collect(),
        Value::Object(map) => map.keys().cloned().collect(),
        _ => BTreeSet::from(["default".to_string()]),
    };
    let names: BTreeSet<String> = names
        .into_iter()
        .map(|n| external_name(doc, &n).unwrap_or(n))
        .collect();
    json!(names)
}

/// Secrets as target path → content of the file (one trailing line break dropped).
fn secrets(value: &Value, doc: &Value) -> Value {
    let mut out = BTreeMap::new();
    let Value::Array(items) = value else {
        return json!(out);
    };
    for item in items {
        let (source, target) = match item {
            Value::Object(_) => {
                let source = scalar(&item["source"]).unwrap_or_default();
                let target = scalar(&item["target"]).unwrap_or_else(|| source.clone());
                (source, target)
            }
            other => {
                let source = scalar(other).unwrap_or_default();
                (source.clone(), source)
            }
        };
        let target = if target.starts_with('/') {
            target
        } else {
            format!("/run/secrets/{target}")
        };
        let file = scalar(&doc["secrets"][&source]["file"]).unwrap_or_default();
        let content = std::fs::read_to_string(&file)
            .map(|c| c.strip_suffix('\n').map(str::to_string).unwrap_or(c))
            .unwrap_or_else(|e| format!("<cannot read {file}: {e}>"));
        out.insert(target, content);
    }
    json!(out)
}

/// A Compose duration in milliseconds (`1m30s`, `500ms`, `10s`, `1h`).
pub fn millis(text: &str) -> u64 {
    let mut total = 0u64;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let mut unit = c.to_string();
        while let Some(n) = chars.peek().filter(|n| n.is_ascii_alphabetic()) {
            unit.push(*n);
            chars.next();
        }
        let value: f64 = number.parse().unwrap_or(0.0);
        number.clear();
        let factor = match unit.as_str() {
            "ms" => 1.0,
            "s" => 1000.0,
            "m" => 60_000.0,
            "h" => 3_600_000.0,
            "us" => 0.001,
            _ => 0.0,
        };
        total += (value * factor) as u64;
    }
    if !number.is_empty() {
        total += (number.parse::<f64>().unwrap_or(0.0) * 1000.0) as u64;
    }
    total
}

/// A Compose size in bytes (`512m`, `1G`, `10485760`, `256M`, `1gb`).
pub fn bytes(text: &str) -> u64 {
    let lower = text.trim().to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    let cut = lower
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(lower.len());
    let number: f64 = lower[..cut].parse().unwrap_or(0.0);
    let factor = match &lower[cut..] {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        _ => 0.0,
    };
    (number * factor) as u64
}
