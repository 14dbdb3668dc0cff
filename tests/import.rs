//! `stack import`: the round trip (every Compose file under `fixtures-compose/` imported,
//! built, and compared with the original through `docker-compose config`, service by
//! service), the Otto seed with its Caddyfile, the nself layout, and bad input.

mod common;
#[path = "common/compose_equiv.rs"]
mod compose_equiv;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use common::{folders, mode, parse_env, repo_root, require_tool};
use serde_json::{json, Value};

/// The `stack` binary with an empty environment (interpolation must not see the test's).
fn stack() -> assert_cmd::Command {
    let mut command = assert_cmd::Command::cargo_bin("stack").unwrap();
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .env("NO_COLOR", "1");
    command
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A Compose fixture copied to `<tmp>/<name>/`, with the project dir `<tmp>/project`.
struct Case {
    _tmp: tempfile::TempDir,
    src: PathBuf,
    project: PathBuf,
}

fn case(dir: &Path) -> Case {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join(dir.file_name().unwrap());
    copy_dir(dir, &src);
    let project = tmp.path().join("project");
    Case {
        _tmp: tmp,
        src,
        project,
    }
}

/// Import, build and compare one Compose fixture; the differences (empty: equivalent),
/// the fixture's temporary folder written `<fixture>` so that `EXPECT-DIFF` can list them.
fn round_trip(
    dir: &Path,
    extra: &[&str],
    configs: &mut Option<compose_equiv::Configs>,
) -> Result<Vec<String>, String> {
    let case = case(dir);
    let folder = case.src.display().to_string();
    let stable = |text: String| text.replace(&folder, "<fixture>");
    round_trip_in(&case, extra, configs)
        .map(|differences| differences.into_iter().map(stable).collect())
        .map_err(stable)
}

/// `docker-compose config` of `file`: by the kept-running one when there is one.
fn compose_config(
    configs: &mut Option<compose_equiv::Configs>,
    file: &Path,
) -> Result<Value, String> {
    match configs {
        Some(configs) => configs.config(file),
        None => compose_equiv::config(file),
    }
}

fn round_trip_in(
    case: &Case,
    extra: &[&str],
    configs: &mut Option<compose_equiv::Configs>,
) -> Result<Vec<String>, String> {
    let file = case.src.join("docker-compose.yml");
    let output = stack()
        .args(["--json", "import", "compose"])
        .arg(&file)
        .arg(&case.project)
        .args(extra)
        .output()
        .unwrap();
    if !output.status.success() {
        return Err(format!(
            "import failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let report: Value = serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
    let renamed: BTreeMap<String, String> =
        serde_json::from_value(report["renamed"].clone()).unwrap_or_default();
    let built = stack()
        .arg("-C")
        .arg(&case.project)
        .arg("build")
        .output()
        .unwrap();
    if !built.status.success() {
        return Err(format!(
            "build failed: {}\n--- stack.env\n{}",
            String::from_utf8_lossy(&built.stderr),
            fs::read_to_string(case.project.join("stack.env")).unwrap_or_default()
        ));
    }
    let lowered = lower_for_v1(&file)?;
    let original = compose_config(configs, &lowered);
    let _ = fs::remove_file(&lowered);
    let original = original?;
    let rendered = compose_config(configs, &case.project.join(".stack/dev/docker-compose.yml"))?;
    Ok(compose_equiv::compare(&original, &rendered, &renamed))
}

/// A copy of the Compose file `file` (beside it, so `.env` and relative paths still
/// apply) with the Compose Specification's newer syntax written the way Debian's
/// docker-compose v1 reads it, each with the meaning Compose v2 gives it, so that the
/// original can be compared at all. Only the original is lowered: the rendered file must
/// be read by v1 as it is.
///
/// - an `environment` value that is a YAML boolean is that word (`true`), as v2 passes it;
/// - `deploy.resources.limits.pids` is `pids_limit`;
/// - `environment:` holding only comments (null) is no environment;
/// - a label listed twice with the same value is listed once;
/// - a service in a profile is left out (no profile is activated), as `docker compose up`
///   leaves it out, and so is a dependency on it marked `required: false`; `required` and
///   `restart` of a `depends_on` entry are dropped (v1 has neither);
/// - `deploy.restart_policy.condition` is the restart policy when `restart` is absent
///   (`any` is `always`, `none` is `no`), as v2 runs the container;
/// - an `env_file` entry `{path, required}` is its path, left out when `required: false`
///   and the file does not exist (v2 skips it);
/// - a value that nests a variable in a default (`${A:-${B}}`, `${A:-x$B}`, `${A:+x${A}}`),
///   which v1 cuts at the first `}` or keeps as text, is interpolated as v2 does, from
///   `.env` alone;
/// - a top-level config's `content` (v1's schema has `file` only) is that text in a file
///   beside it (`.v1-config-<name>`), which the comparison reads as the same content;
/// - an `env_file` whose values interpolate (`MAUTIC_DB_HOST="${MYSQL_HOST}"`) is a copy
///   with them interpolated as v2 does, from the file's earlier lines and `.env` (itself
///   interpolated line by line); v1 interpolates them from the shell alone;
/// - what Coolify's templates leave to Coolify, which declares and writes them when it
///   deploys (Compose v2 refuses these too): a named volume a service mounts but the file
///   does not declare is declared, and a bind mount's `content` is written to its source;
/// - a port with an empty host address (`:2283:2283`, v2's "every address") has none;
///   Coolify's own service key `exclude_from_hc` is left out.
fn lower_for_v1(file: &Path) -> Result<PathBuf, String> {
    let text = fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut yaml: serde_norway::Value =
        serde_norway::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    yaml.apply_merge()
        .map_err(|e| format!("{}: {e}", file.display()))?;
    let mut doc: Value = serde_json::to_value(&yaml).map_err(|e| e.to_string())?;
    let dir = file.parent().unwrap();
    lower_include(&mut doc, dir)?;
    let dotenv = parse_dotenv(&fs::read_to_string(dir.join(".env")).unwrap_or_default());
    lower_nested(&mut doc, &dotenv);
    let resolved = interpolated_dotenv(
        &fs::read_to_string(dir.join(".env")).unwrap_or_default(),
        BTreeMap::new(),
    );
    lower_config_content(&mut doc, dir)?;
    let mut undeclared = Vec::new();
    if let Some(services) = doc.get_mut("services").and_then(Value::as_object_mut) {
        let active = active_profiles(&fs::read_to_string(dir.join(".env")).unwrap_or_default());
        let profiled: Vec<String> = services
            .iter()
            .filter(|(_, s)| {
                let profiles = s["profiles"].as_array().cloned().unwrap_or_default();
                !profiles.is_empty()
                    && !profiles
                        .iter()
                        .any(|p| p.as_str().is_some_and(|p| active.iter().any(|a| a == p)))
            })
            .map(|(name, _)| name.clone())
            .collect();
        services.retain(|name, _| !profiled.contains(name));
        for service in services.values_mut().filter_map(Value::as_object_mut) {
            // Activated already: v1 would read `COMPOSE_PROFILES` without interpolation.
            service.remove("profiles");
            lower_service(service, dir, &profiled);
            lower_env_files(service, dir, &resolved)?;
            lower_coolify(service, dir, &resolved, &mut undeclared)?;
        }
    }
    for name in undeclared {
        let volumes = doc
            .as_object_mut()
            .unwrap()
            .entry("volumes")
            .or_insert_with(|| json!({}));
        if volumes.is_null() {
            *volumes = json!({});
        }
        if let Some(volumes) = volumes.as_object_mut() {
            volumes.entry(name).or_insert(Value::Null);
        }
    }
    let lowered = dir.join(".v1-lowered-compose.yml");
    fs::write(&lowered, serde_json::to_string_pretty(&doc).unwrap())
        .map_err(|e| format!("{}: {e}", lowered.display()))?;
    Ok(lowered)
}

/// `text`'s `KEY=VALUE` lines as Compose v2 reads a `.env` or `env_file`: quotes removed,
/// each value but a single-quoted one interpolated with the lines before it over `base`.
fn interpolated_dotenv(text: &str, base: BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut values = base;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        let single = value.len() >= 2 && value.starts_with('\'') && value.ends_with('\'');
        let unquoted = parse_dotenv(&format!("k={value}"))
            .remove("k")
            .unwrap_or_default();
        let value = if single {
            unquoted
        } else {
            interpolate_v2(&unquoted, &values)
        };
        values.insert(key.trim().to_string(), value);
    }
    values
}

/// Each `env_file` of `service` that interpolates (`$` in it) replaced by a copy with
/// its values interpolated as v2 does ([`interpolated_dotenv`] over `dotenv`).
fn lower_env_files(
    service: &mut serde_json::Map<String, Value>,
    dir: &Path,
    dotenv: &BTreeMap<String, String>,
) -> Result<(), String> {
    let files = match service.get_mut("env_file") {
        Some(Value::String(one)) => vec![Value::String(one.clone())],
        Some(Value::Array(all)) => all.clone(),
        _ => return Ok(()),
    };
    let mut lowered = Vec::new();
    for file in &files {
        let Some(path) = file.as_str() else {
            lowered.push(file.clone());
            continue;
        };
        let text = fs::read_to_string(dir.join(path)).unwrap_or_default();
        if !text.contains('$') {
            lowered.push(file.clone());
            continue;
        }
        let own = interpolated_dotenv(&text, dotenv.clone());
        let keys = parse_dotenv(&text);
        let body: String = keys
            .keys()
            .map(|key| format!("{key}={}\n", own[key]))
            .collect();
        let copy = format!(".v1-env-{}", path.replace(['/', '.'], "_"));
        fs::write(dir.join(&copy), body).map_err(|e| format!("{copy}: {e}"))?;
        lowered.push(Value::String(format!("./{copy}")));
    }
    service.insert("env_file".into(), Value::Array(lowered));
    Ok(())
}

/// A service's named volumes (into `undeclared`, declared by the caller where the file
/// does not), its bind mounts' `content` written to their sources, and its ports' empty
/// host addresses, as Coolify and Compose v2 read them ([`lower_for_v1`]).
fn lower_coolify(
    service: &mut serde_json::Map<String, Value>,
    dir: &Path,
    dotenv: &BTreeMap<String, String>,
    undeclared: &mut Vec<String>,
) -> Result<(), String> {
    // Coolify's own key (whether its health view counts the service).
    service.remove("exclude_from_hc");
    for volume in service
        .get_mut("volumes")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        match volume {
            Value::String(short) => {
                let source = short.split(':').next().unwrap_or_default();
                let named = source
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric())
                    && short.contains(':')
                    && !source.contains(['/', '$']);
                if named {
                    undeclared.push(source.to_string());
                }
            }
            Value::Object(long) => {
                let source = long.get("source").and_then(Value::as_str).map(String::from);
                if let (Some(Value::String(content)), Some(source)) =
                    (long.remove("content"), source)
                {
                    let path = dir.join(&source);
                    if let Some(parent) = path.parent() {
                        fs::create_dir_all(parent).map_err(|e| format!("{source}: {e}"))?;
                    }
                    fs::write(&path, content).map_err(|e| format!("{source}: {e}"))?;
                }
                long.remove("isDirectory");
                let kind = long.get("type").and_then(Value::as_str);
                if let (Some("volume"), Some(source)) =
                    (kind, long.get("source").and_then(Value::as_str))
                {
                    undeclared.push(source.to_string());
                }
            }
            _ => {}
        }
    }
    for port in service
        .get_mut("ports")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Value::String(text) = port {
            let value = interpolate_v2(text, dotenv);
            if let Some(rest) = value.strip_prefix(':') {
                *text = rest.replace('$', "$$");
            }
        }
    }
    Ok(())
}

/// Each top-level config given as `content` written to `.v1-config-<name>` beside the file
/// and named by `file`, the form v1 reads.
fn lower_config_content(doc: &mut Value, dir: &Path) -> Result<(), String> {
    let Some(configs) = doc.get_mut("configs").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    for (name, config) in configs.iter_mut() {
        let Some(content) = config.get("content").and_then(Value::as_str) else {
            continue;
        };
        let file = format!(".v1-config-{name}");
        fs::write(dir.join(&file), content).map_err(|e| format!("{file}: {e}"))?;
        *config = json!({ "file": format!("./{file}") });
    }
    Ok(())
}

/// `deploy.resources.limits.pids`, which v1's schema lacks, as the `pids_limit` it means
/// (the service's own `pids_limit` gives way, as in Compose v2).
fn lower_pids(service: &mut serde_json::Map<String, Value>) {
    let limits = service
        .get_mut("deploy")
        .and_then(|d| d.get_mut("resources"))
        .and_then(|r| r.get_mut("limits"))
        .and_then(Value::as_object_mut);
    if let Some(pids) = limits.and_then(|l| l.remove("pids")) {
        service.insert("pids_limit".into(), pids);
    }
}

/// Top-level `include` (Compose v2; v1 refuses the key): the services, volumes, networks,
/// secrets and configs of each included file added, as Compose adds them. Only files in
/// the same folder (their relative paths then mean the same), else an error.
fn lower_include(doc: &mut Value, dir: &Path) -> Result<(), String> {
    let Some(include) = doc.as_object_mut().and_then(|top| top.remove("include")) else {
        return Ok(());
    };
    let paths: Vec<String> = match include {
        Value::String(path) => vec![path],
        Value::Array(items) => items
            .into_iter()
            .flat_map(|item| match item {
                Value::String(path) => vec![path],
                Value::Object(entry) => match entry.get("path") {
                    Some(Value::String(path)) => vec![path.clone()],
                    Some(Value::Array(paths)) => paths
                        .iter()
                        .filter_map(|p| p.as_str().map(str::to_string))
                        .collect(),
                    _ => Vec::new(),
                },
                _ => Vec::new(),
            })
            .collect(),
        _ => Vec::new(),
    };
    for path in paths {
        let included = dir.join(&path);
        if included.parent().map(|p| p.canonicalize().ok()) != Some(dir.canonicalize().ok()) {
            return Err(format!(
                "include `{path}`: only a file in the same folder is lowered for v1"
            ));
        }
        let text = fs::read_to_string(&included).map_err(|e| format!("{path}: {e}"))?;
        let mut yaml: serde_norway::Value =
            serde_norway::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
        yaml.apply_merge().map_err(|e| format!("{path}: {e}"))?;
        let other: Value = serde_json::to_value(&yaml).map_err(|e| e.to_string())?;
        for section in ["services", "volumes", "networks", "secrets", "configs"] {
            let Some(Value::Object(entries)) = other.get(section) else {
                continue;
            };
            let top = doc.as_object_mut().unwrap();
            let target = top.entry(section).or_insert_with(|| json!({}));
            if target.is_null() {
                *target = json!({});
            }
            for (name, value) in entries {
                target
                    .as_object_mut()
                    .unwrap()
                    .entry(name.clone())
                    .or_insert_with(|| value.clone());
            }
        }
    }
    Ok(())
}

/// The profiles `docker compose up` activates with no `--profile`: `COMPOSE_PROFILES`
/// of `.env`, each line interpolated with the lines before it (a line that names itself
/// reads it as unset), else the one empty profile `""`, as Compose splits an unset value.
fn active_profiles(dotenv: &str) -> Vec<String> {
    let mut values = BTreeMap::new();
    for (key, value) in dotenv
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
    {
        let value = interpolate_v2(value.trim(), &values);
        values.insert(key.trim().to_string(), value);
    }
    values
        .get("COMPOSE_PROFILES")
        .map_or("", String::as_str)
        .split(',')
        .map(|p| p.trim().to_string())
        .collect()
}

/// `.env` as plain `KEY=VALUE` lines (quotes removed), for [`interpolate_v2`].
fn parse_dotenv(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let unquoted = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            (k.trim().to_string(), unquoted.to_string())
        })
        .collect()
}

/// Every string that nests a variable in a default or alternative (`${A:-${B}}`), which
/// docker-compose v1 cannot read, interpolated now as Compose v2 does (its `$` escaped).
fn lower_nested(value: &mut Value, dotenv: &BTreeMap<String, String>) {
    match value {
        Value::String(text) if nests(text) => {
            *text = interpolate_v2(text, dotenv).replace('$', "$$");
        }
        Value::Array(items) => items.iter_mut().for_each(|v| lower_nested(v, dotenv)),
        Value::Object(map) => map.values_mut().for_each(|v| lower_nested(v, dotenv)),
        _ => {}
    }
}

/// Whether a `${…}` of `text` holds another variable (`${A:-${B}}`, `${A:-x$B}`).
fn nests(text: &str) -> bool {
    let mut depth = 0;
    let bytes = text.as_bytes();
    for (i, byte) in bytes.iter().enumerate() {
        let next = bytes.get(i + 1).copied().unwrap_or(b' ');
        match byte {
            b'$' if depth > 0 && (next == b'{' || next == b'_' || next.is_ascii_alphabetic()) => {
                return true;
            }
            b'{' if i > 0 && bytes[i - 1] == b'$' => depth += 1,
            b'}' if depth > 0 => depth -= 1,
            _ => {}
        }
    }
    false
}

/// Compose v2's interpolation of `text` with `dotenv` (an empty process environment):
/// `$$`, `$NAME`, `${NAME}` and its `:-` `-` `:+` `+` `:?` `?` forms, nested.
fn interpolate_v2(text: &str, dotenv: &BTreeMap<String, String>) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '$' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        match chars.get(i + 1) {
            Some('$') => {
                out.push('$');
                i += 2;
            }
            Some('{') => {
                let mut depth = 1;
                let mut j = i + 2;
                while j < chars.len() && depth > 0 {
                    match chars[j] {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        _ => {}
                    }
                    j += 1;
                }
                let inner: String = chars[i + 2..j.saturating_sub(1)].iter().collect();
                out.push_str(&expand(&inner, dotenv));
                i = j;
            }
            Some(c) if c.is_ascii_alphabetic() || *c == '_' => {
                let mut j = i + 1;
                while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                let name: String = chars[i + 1..j].iter().collect();
                out.push_str(dotenv.get(&name).map_or("", String::as_str));
                i = j;
            }
            _ => {
                out.push('$');
                i += 1;
            }
        }
    }
    out
}

fn expand(inner: &str, dotenv: &BTreeMap<String, String>) -> String {
    let end = inner
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(inner.len());
    let (name, rest) = inner.split_at(end);
    let value = dotenv.get(name);
    let full = value.is_some_and(|v| !v.is_empty());
    let (op, arg) = match rest {
        r if r.starts_with(":-") || r.starts_with(":+") || r.starts_with(":?") => r.split_at(2),
        r if r.starts_with('-') || r.starts_with('+') || r.starts_with('?') => r.split_at(1),
        r => (r, ""),
    };
    match op {
        ":-" if !full => interpolate_v2(arg, dotenv),
        "-" if value.is_none() => interpolate_v2(arg, dotenv),
        ":+" if full => interpolate_v2(arg, dotenv),
        "+" if value.is_some() => interpolate_v2(arg, dotenv),
        ":+" | "+" => String::new(),
        _ => value.cloned().unwrap_or_default(),
    }
}

fn lower_service(service: &mut serde_json::Map<String, Value>, dir: &Path, gone: &[String]) {
    // Compose v2 runs the container with `deploy.restart_policy` when `restart` is absent
    // (v1 keeps it for swarm only).
    let condition = service
        .get("deploy")
        .and_then(|deploy| deploy.get("restart_policy"))
        .and_then(|policy| policy.get("condition"))
        .and_then(Value::as_str)
        .map(|condition| match condition {
            "any" => "always",
            "none" => "no",
            other => other,
        });
    if let (None, Some(condition)) = (service.get("restart"), condition) {
        service.insert("restart".into(), Value::String(condition.into()));
    }
    lower_pids(service);
    match service.get_mut("environment") {
        Some(Value::Null) => {
            service.remove("environment");
        }
        Some(Value::Object(environment)) => {
            for value in environment.values_mut() {
                if let Value::Bool(b) = value {
                    *value = Value::String(b.to_string());
                }
            }
        }
        _ => {}
    }
    if let Some(Value::Array(labels)) = service.get_mut("labels") {
        let mut seen = Vec::new();
        labels.retain(|label| {
            let new = !seen.contains(label);
            seen.push(label.clone());
            new
        });
    }
    if let Some(Value::Object(depends)) = service.get_mut("depends_on") {
        depends.retain(|name, options| {
            let optional = options.get("required") == Some(&Value::Bool(false));
            if let Some(options) = options.as_object_mut() {
                options.remove("required");
                options.remove("restart");
            }
            !(optional && gone.contains(name))
        });
    }
    if let Some(Value::Array(files)) = service.get_mut("env_file") {
        files.retain_mut(|entry| {
            let Some(path) = entry
                .get("path")
                .and_then(Value::as_str)
                .map(str::to_string)
            else {
                return true;
            };
            let optional = entry.get("required") == Some(&Value::Bool(false));
            let keep = !optional || dir.join(&path).exists();
            *entry = Value::String(path);
            keep
        });
    }
}

/// A fixture's accepted differences: `EXPECT-DIFF` beside its Compose file, one
/// difference a line, exactly as `compare` words it (`#` comments and blank lines
/// skipped). A line `refused: TEXT` accepts an import, build or `docker-compose config`
/// that fails with TEXT in its message (docker-compose v1 refuses some real files).
fn expected_differences(dir: &Path) -> Vec<String> {
    fs::read_to_string(dir.join("EXPECT-DIFF"))
        .unwrap_or_default()
        .lines()
        .map(str::trim_end)
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// The round trip's outcome against the accepted differences: what is new, and what is
/// accepted but no longer happens (so `EXPECT-DIFF` never goes stale).
fn unexpected(outcome: &Result<Vec<String>, String>, expected: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    match outcome {
        Ok(differences) => {
            for difference in differences {
                if !expected.contains(difference) {
                    problems.push(difference.clone());
                }
            }
            for line in expected {
                if line.starts_with("refused: ") || !differences.contains(line) {
                    problems.push(format!("expected but not seen: {line}"));
                }
            }
        }
        Err(err) => {
            let accepted = expected.iter().any(|line| {
                line.strip_prefix("refused: ")
                    .is_some_and(|text| err.contains(text))
            });
            if !accepted {
                problems.push(err.clone());
            }
        }
    }
    problems
}

#[test]
fn every_compose_fixture_round_trips() {
    require_tool("docker-compose");
    let root = repo_root().join("fixtures-compose");
    let mut names = folders(&root);
    assert!(names.len() >= 16, "{names:?}");
    // `STACK_FIXTURES=a,b`: only these (while working on them; CI runs all).
    if let Ok(only) = std::env::var("STACK_FIXTURES") {
        names.retain(|name| only.split(',').any(|o| o == name));
    }
    // Each round trip mostly waits on docker-compose: a few at a time, each fixture in its
    // own temporary folder, each worker with one docker-compose kept running (not a
    // Python start-up per call, `compose_equiv::Configs`); results kept in fixture order.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(vec![None; names.len()]);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get() + 1);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                let mut configs = compose_equiv::Configs::start();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(name) = names.get(i) else { break };
                    let dir = root.join(name);
                    let outcome = round_trip(&dir, &[], &mut configs);
                    let exact = matches!(&outcome, Ok(differences) if differences.is_empty());
                    let problems = unexpected(&outcome, &expected_differences(&dir));
                    results.lock().unwrap()[i] = Some((exact, problems));
                }
            });
        }
    });
    let mut failures = Vec::new();
    let mut exact = 0;
    for (name, result) in names.iter().zip(results.into_inner().unwrap()) {
        let (is_exact, problems) = result.expect("every fixture was run");
        exact += usize::from(is_exact);
        if !problems.is_empty() {
            failures.push(format!("{name}:\n  {}", problems.join("\n  ")));
        }
    }
    eprintln!("{exact} of {} fixtures round-trip exactly", names.len());
    assert!(
        failures.is_empty(),
        "{} of {} fixtures do not round-trip as expected:\n{}",
        failures.len(),
        names.len(),
        failures.join("\n")
    );
}

#[test]
fn expect_diff_accepts_only_what_it_lists() {
    let expected = [
        "service `a`: ports differ".to_string(),
        "refused: not a file".to_string(),
    ];
    let seen = Ok(vec!["service `a`: ports differ".to_string()]);
    assert_eq!(
        unexpected(&seen, &expected[..1]),
        Vec::<String>::new(),
        "a listed difference is accepted"
    );
    let new = Ok(vec!["service `b`: command differs".to_string()]);
    assert_eq!(unexpected(&new, &expected[..1]).len(), 2, "new, and stale");
    let refused: Result<Vec<String>, String> = Err("import failed: not a file".into());
    assert!(unexpected(&refused, &expected[1..]).is_empty());
    assert_eq!(unexpected(&refused, &[]).len(), 1);
}

#[test]
fn the_comparison_reports_a_changed_file() {
    require_tool("docker-compose");
    let dir = repo_root().join("fixtures-compose/web-db-cache");
    let case = case(&dir);
    let file = case.src.join("docker-compose.yml");
    let original = compose_equiv::config(&file).unwrap();
    assert!(compose_equiv::compare(&original, &original, &BTreeMap::new()).is_empty());
    let text = fs::read_to_string(&file).unwrap();
    let changed = text
        .replace("\"8000:5000\"", "\"8001:5000\"")
        .replace("redis-server --appendonly yes", "redis-server")
        .replace(
            "      - db-data:/var/lib/postgresql/data",
            "      - db-data:/var/lib/postgresql/data:ro",
        );
    let other = case.src.join("changed.yml");
    fs::write(&other, changed).unwrap();
    let rendered = compose_equiv::config(&other).unwrap();
    let differences = compose_equiv::compare(&original, &rendered, &BTreeMap::new());
    let text = differences.join("\n");
    assert!(text.contains("service `web`: ports"), "{text}");
    assert!(text.contains("service `redis`: command"), "{text}");
    assert!(text.contains("service `db`: volumes"), "{text}");
    assert_eq!(differences.len(), 3, "{text}");
    // A name the original answers to (`container_name`, a `links` alias) must stay.
    let named = fs::read_to_string(&file)
        .unwrap()
        .replace(
            "    image: redis:7-alpine\n",
            "    image: redis:7-alpine\n    container_name: cache_1\n",
        )
        .replace(
            "      - redis\n",
            "      - redis\n    links: [\"redis:kv\"]\n",
        );
    let other = case.src.join("named.yml");
    fs::write(&other, named).unwrap();
    let named = compose_equiv::config(&other).unwrap();
    let text = compose_equiv::compare(&named, &original, &BTreeMap::new()).join("\n");
    assert!(
        text.contains("service `redis`: dns_names: original [\"cache_1\",\"kv\",\"redis\"]"),
        "{text}"
    );
    assert!(compose_equiv::compare(&original, &named, &BTreeMap::new()).is_empty());
    // A missing service, a renamed one, and an extra one are reported too.
    let renamed = BTreeMap::from([("redis".to_string(), "cache".to_string())]);
    let text = compose_equiv::compare(&original, &original, &renamed).join("\n");
    assert!(text.contains("service `redis`: missing"), "{text}");
    assert!(
        text.contains("service `redis`: only in the rendered file"),
        "{text}"
    );
}

#[test]
fn durations_and_sizes_compare_as_numbers() {
    assert_eq!(compose_equiv::millis("1m30s"), 90_000);
    assert_eq!(compose_equiv::millis("500ms"), 500);
    assert_eq!(compose_equiv::bytes("1g"), compose_equiv::bytes("1024m"));
}

/// Write `files` (path, contents) into a new temporary directory.
fn scratch(files: &[(&str, &str)]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for (path, contents) in files {
        let path = tmp.path().join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, contents).unwrap();
    }
    tmp
}

fn import(dir: &Path, file: &str, args: &[&str]) -> std::process::Output {
    stack()
        .args(["import", "compose"])
        .arg(dir.join(file))
        .arg(dir.join("project"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn the_otto_seed_imports_with_its_caddyfile_route() {
    let case = case(&repo_root().join("fixtures-compose/otto"));
    let output = stack()
        .args(["import", "compose"])
        .arg(case.src.join("docker-compose.yml"))
        .arg(&case.project)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let env = parse_env(&fs::read_to_string(case.project.join("stack.env")).unwrap());
    assert_eq!(env["STACK_PROJECT"], "otto");
    assert_eq!(env["STACK_SERVICES"], "app,worker,db");
    assert_eq!(env["STACK_PROXY"], "caddy");
    assert_eq!(env["SERVICE_APP_ROUTE"], "app.icebear.dev");
    assert_eq!(env["SERVICE_APP_PORT"], "8080");
    assert_eq!(env["SERVICE_APP_IMAGE"], "otto/app:${VERSION}");
    assert_eq!(env["VERSION"], "0.14.1");
    assert_eq!(env["STACK_SECRETS"], "DB_PASSWORD");
    assert_eq!(env["SERVICE_APP_ENV_DB_PASSWORD"], "${DB_PASSWORD}");
    assert!(!env.contains_key("SERVICE_WORKER_ROUTE"));
    let ignore = fs::read_to_string(case.project.join(".gitignore")).unwrap();
    assert!(ignore.contains("environments/*/secrets.env"), "{ignore}");
    // Database dumps stay out of git too, as in `stack init`'s.
    assert!(ignore.lines().any(|l| l == "backups/"), "{ignore}");
    let secrets_path = case.project.join("environments/dev/secrets.env");
    assert_eq!(mode(&secrets_path), 0o600);
    let secrets = parse_env(&fs::read_to_string(&secrets_path).unwrap());
    assert_eq!(secrets["DB_PASSWORD"], "correct-horse-battery");
    // The route reaches the rendered Caddyfile.
    let built = stack()
        .arg("-C")
        .arg(&case.project)
        .arg("build")
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", stderr(&built));
    let caddyfile = fs::read_to_string(case.project.join(".stack/dev/Caddyfile")).unwrap();
    assert!(caddyfile.contains("app.icebear.dev"), "{caddyfile}");
    assert!(caddyfile.contains("name app\n"), "{caddyfile}");
    assert!(caddyfile.contains("port 8080\n"), "{caddyfile}");
}

#[test]
fn the_otto_seed_as_published_is_invalid_yaml_at_its_line() {
    let dir = repo_root().join("fixtures-compose/otto");
    let tmp = tempfile::tempdir().unwrap();
    let output = stack()
        .args(["import", "compose"])
        .arg(dir.join("seed-verbatim.yml"))
        .arg(tmp.path().join("project"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(text.contains("is not valid YAML"), "{text}");
    assert!(text.contains("seed-verbatim.yml:3:27"), "{text}");
    assert!(!tmp.path().join("project/stack.env").exists());
}

#[test]
fn invalid_yaml_and_other_documents_are_refused_with_their_line() {
    let tmp = scratch(&[
        ("tabs.yml", "services:\n  web:\n\timage: nginx\n"),
        (
            "k8s.yml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n",
        ),
        ("list.yml", "- services\n- web\n"),
        ("bad-service.yml", "services:\n  web: nginx:1.27\n"),
        ("services-list.yml", "version: '3'\nservices:\n  - web\n"),
        ("unclosed.yml", "services:\n  web:\n    image: \"nginx\n"),
    ]);
    for (file, needle, line) in [
        ("tabs.yml", "is not valid YAML", ":3:"),
        (
            "k8s.yml",
            "is not a Compose file: it has no `services`",
            ":1:",
        ),
        (
            "list.yml",
            "is not a Compose file: the document is a list",
            ":1:",
        ),
        (
            "bad-service.yml",
            "service `web` is a string, not a mapping",
            ":2:",
        ),
        (
            "services-list.yml",
            "`services` is a list, not a mapping",
            ":2:",
        ),
        ("unclosed.yml", "is not valid YAML", ":4:"),
    ] {
        let output = import(tmp.path(), file, &[]);
        assert_eq!(output.status.code(), Some(2), "{file}");
        let text = stderr(&output);
        assert!(text.contains(needle), "{file}: {text}");
        assert!(text.contains(&format!("{file}{line}")), "{file}: {text}");
        assert!(!tmp.path().join("project/stack.env").exists(), "{file}");
    }
}

const NOT_CARRIED: &str = "\
services:
  web:
    image: nginx:1.27
    device_cgroup_rules: ['c 188:* rmw']
    cpu_count: 2
    uts: host
    frobnicate: yes
    cgroup_parent: custom
    read_only: true
  db:
    image: postgres:16
    external_links:
      - other
configs:
  site:
    file: ./site.conf
";

#[test]
fn what_is_not_carried_is_listed_by_service_and_key() {
    let tmp = scratch(&[("docker-compose.yml", NOT_CARRIED)]);
    let output = import(tmp.path(), "docker-compose.yml", &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stderr(&output);
    for needle in [
        "service `web` (line 4): `device_cgroup_rules`: stack has no attribute for it; the host access it gives is `DEVICES`",
        "service `web` (line 5): `cpu_count`",
        "service `web` (line 6): `uts`",
        "service `web` (line 7): `frobnicate`: unknown key: not in the Compose Specification",
        "service `web` (line 8): `cgroup_parent`",
        "service `db` (line 12): `external_links`: a container outside the project",
    ] {
        assert!(text.contains(needle), "{needle}\n{text}");
    }
    let written = fs::read_to_string(tmp.path().join("project/stack.env")).unwrap();
    assert!(
        written.contains("# not carried: `device_cgroup_rules`"),
        "{written}"
    );
    // --json lists them too, with the same fields.
    let tmp = scratch(&[("docker-compose.yml", NOT_CARRIED)]);
    let output = stack()
        .args(["--json", "import", "compose"])
        .arg(tmp.path().join("docker-compose.yml"))
        .arg(tmp.path().join("project"))
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    // The top-level `configs` no service names is no finding: Compose ignores it too.
    assert_eq!(report["not_carried"], 6, "{report}");
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == "frobnicate")
        .unwrap();
    assert_eq!(finding["service"], "web");
    assert_eq!(finding["line"], 7);
}

#[test]
fn strict_refuses_and_writes_nothing() {
    let tmp = scratch(&[("docker-compose.yml", NOT_CARRIED)]);
    let output = import(tmp.path(), "docker-compose.yml", &["--strict"]);
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(
        text.contains("6 thing(s) of the input are not carried (`--strict`)"),
        "{text}"
    );
    assert!(!tmp.path().join("project/stack.env").exists());
    // A file that carries everything passes --strict.
    let tmp = scratch(&[(
        "docker-compose.yml",
        "services:\n  web:\n    image: nginx:1.27\n",
    )]);
    let output = import(tmp.path(), "docker-compose.yml", &["--strict"]);
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn an_existing_project_is_never_replaced() {
    let tmp = scratch(&[
        (
            "docker-compose.yml",
            "services:\n  web:\n    image: nginx:1.27\n",
        ),
        ("project/stack.env", "STACK_PROJECT=mine\n"),
    ]);
    let output = import(tmp.path(), "docker-compose.yml", &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("already exists; import never replaces a project"));
    assert_eq!(
        fs::read_to_string(tmp.path().join("project/stack.env")).unwrap(),
        "STACK_PROJECT=mine\n"
    );
    // An existing secrets file is not replaced either, and no stack.env appears.
    let tmp = scratch(&[
        (
            "docker-compose.yml",
            "services:\n  web:\n    image: nginx:1.27\n    environment:\n      API_TOKEN: abc\n",
        ),
        ("project/environments/dev/secrets.env", "API_TOKEN=old\n"),
    ]);
    let output = import(tmp.path(), "docker-compose.yml", &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(!tmp.path().join("project/stack.env").exists());
    assert_eq!(
        fs::read_to_string(tmp.path().join("project/environments/dev/secrets.env")).unwrap(),
        "API_TOKEN=old\n"
    );
}

#[test]
fn a_project_that_does_not_read_back_is_removed_whole() {
    // stack refuses an unknown capability; the import must leave nothing behind.
    let tmp = scratch(&[(
        "docker-compose.yml",
        "services:\n  web:\n    image: nginx:1.27\n    cap_add: [NOT_A_CAPABILITY]\n    environment:\n      DB_PASSWORD: hunter2-secret\n",
    )]);
    let output = import(tmp.path(), "docker-compose.yml", &[]);
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(text.contains("NOT_A_CAPABILITY"), "{text}");
    assert!(text.contains("does not read back"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    let left: Vec<_> = fs::read_dir(tmp.path().join("project")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn secret_values_never_appear_in_output_or_stack_env() {
    let values = [
        "s3cr3t-db-pass",
        "flask-signing-key-123",
        "file-secret-db-pass",
        "ak_live_0123456789",
        "sk_test_51example",
        "somewordpress",
        "interp-admin-pass",
        "guest-dev-only",
    ];
    for name in [
        "web-db-cache",
        "env-file",
        "no-version",
        "interpolation",
        "queue-worker",
        "file-secrets",
    ] {
        let case = case(&repo_root().join("fixtures-compose").join(name));
        for json in [false, true] {
            let project = case.project.join(if json { "json" } else { "text" });
            let mut command = stack();
            if json {
                command.arg("--json");
            }
            let output = command
                .args(["-v", "import", "compose"])
                .arg(case.src.join("docker-compose.yml"))
                .arg(&project)
                .output()
                .unwrap();
            let shown = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                stderr(&output)
            );
            let stack_env = fs::read_to_string(project.join("stack.env")).unwrap_or_default();
            for value in values {
                assert!(!shown.contains(value), "{name}: `{value}` shown:\n{shown}");
                assert!(
                    !stack_env.contains(value),
                    "{name}: `{value}` in stack.env:\n{stack_env}"
                );
            }
        }
    }
}

#[test]
fn a_huge_file_and_an_alias_bomb_are_bounded() {
    let mut huge = String::from("services:\n  web:\n    image: nginx\n    environment:\n");
    while huge.len() < 5 * 1024 * 1024 {
        huge.push_str(&format!("      VAR_{}: value\n", huge.len()));
    }
    let mut bomb = String::from(
        "x-a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for i in 1..12 {
        let refs = vec![format!("*a{}", i - 1); 9].join(",");
        bomb.push_str(&format!("x-a{i}: &a{i} [{refs}]\n"));
    }
    bomb.push_str("services:\n  web:\n    image: nginx\n    command: *a11\n");
    let tmp = scratch(&[("huge.yml", &huge), ("bomb.yml", &bomb)]);
    let output = import(tmp.path(), "huge.yml", &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("may be at most"),
        "{}",
        stderr(&output)
    );
    let output = import(tmp.path(), "bomb.yml", &[]);
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(
        text.contains("expands to more than") || text.contains("repetition limit"),
        "{text}"
    );
    assert!(text.contains("bomb.yml:"), "{text}");
}

#[test]
fn routes_turn_a_published_http_port_into_a_route() {
    let case = case(&repo_root().join("fixtures-compose/web-db-cache"));
    let output = stack()
        .args(["import", "compose", "--routes"])
        .arg(case.src.join("docker-compose.yml"))
        .arg(&case.project)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let env = parse_env(&fs::read_to_string(case.project.join("stack.env")).unwrap());
    assert_eq!(env["STACK_PROXY"], "caddy");
    assert_eq!(env["SERVICE_WEB_PORT"], "5000");
    assert_eq!(env["SERVICE_WEB_ROUTE"], "web.${STACK_DOMAIN}");
    assert!(!env.contains_key("SERVICE_WEB_PUBLISH"));
    // `redis` is a preset's name, but the preset is not enabled: the name is the
    // project's, so `redis://redis:6379/0` still resolves.
    assert!(env.contains_key("SERVICE_REDIS_IMAGE"), "{env:?}");
    assert!(
        !stderr(&output).contains("renamed to"),
        "{}",
        stderr(&output)
    );
    let built = stack()
        .arg("-C")
        .arg(&case.project)
        .arg("build")
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", stderr(&built));
    let caddyfile = fs::read_to_string(case.project.join(".stack/dev/Caddyfile")).unwrap();
    assert!(caddyfile.contains("web.localhost"), "{caddyfile}");
}

#[test]
fn an_nself_project_becomes_presets_services_routes_and_environments() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("shopfront");
    copy_dir(&repo_root().join("fixtures-import/nself"), &src);
    let project = tmp.path().join("project");
    let output = stack()
        .args(["import", "nself"])
        .arg(&src)
        .arg(&project)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stderr(&output);
    for needle in [
        "`NSELF_ADMIN_ENABLED`: stack has no preset",
        "`REMOTE_SCHEMA_1_NAME`",
        "`provider`",
        "`services/payments` does not exist yet",
    ] {
        assert!(text.contains(needle), "{needle}\n{text}");
    }
    let read = |path: &str| parse_env(&fs::read_to_string(project.join(path)).unwrap());
    let env = read("stack.env");
    assert_eq!(env["STACK_PROJECT"], "shopfront");
    assert_eq!(env["STACK_DOMAIN"], "local.nself.org");
    assert_eq!(env["STACK_PROXY"], "nginx");
    assert_eq!(
        env["STACK_SERVICES"],
        "hasura,auth,order-api,webhooks,payments,web,admin"
    );
    for preset in ["POSTGRES", "REDIS", "MINIO", "MAILPIT", "MEILISEARCH"] {
        assert_eq!(env[&format!("{preset}_ENABLED")], "true", "{preset}");
    }
    assert!(!env.contains_key("NSELF_ADMIN_ENABLED"));
    // CS_1=order_api:express-js:8001:orders
    assert_eq!(
        env["SERVICE_ORDER_API_BUILD"],
        "../shopfront/services/order_api"
    );
    assert_eq!(env["SERVICE_ORDER_API_PORT"], "8001");
    assert_eq!(env["SERVICE_ORDER_API_ROUTE"], "orders.${STACK_DOMAIN}");
    assert!(!env.contains_key("SERVICE_WEBHOOKS_ROUTE"));
    // FRONTEND_APP_1_*: a dev server on the host, routed, left out of prod.
    assert_eq!(env["SERVICE_WEB_UPSTREAM"], "localhost:3000");
    assert_eq!(env["SERVICE_WEB_ROUTE"], "app.${STACK_DOMAIN}");
    assert_eq!(env["SERVICE_WEB_FRONTEND"], "true");
    assert_eq!(env["SERVICE_ADMIN_ROUTE"], "dashboard.${STACK_DOMAIN}");
    assert_eq!(
        read("stack.local.env")["HASURA_GRAPHQL_ENABLE_CONSOLE"],
        "false"
    );
    let prod = read("environments/prod/stack.env");
    assert_eq!(prod["STACK_DOMAIN"], "example.com");
    assert_eq!(
        read("environments/staging/stack.env")["MONITORING_ENABLED"],
        "true"
    );
    let server = read("environments/prod/server.env");
    assert_eq!(server["SERVER_HOST"], "203.0.113.10");
    assert_eq!(server["SERVER_USER"], "deploy");
    assert_eq!(server["SERVER_PORT"], "2222");
    assert_eq!(server["SERVER_PATH"], "/opt/shopfront");
    for env_name in ["dev", "staging", "prod"] {
        let path = project.join(format!("environments/{env_name}/secrets.env"));
        assert_eq!(mode(&path), 0o600, "{env_name}");
    }
    assert_eq!(
        read("environments/prod/secrets.env")["HASURA_GRAPHQL_ADMIN_SECRET"],
        "prod-hasura-admin-secret-3"
    );
    let all = format!(
        "{}{}{}",
        fs::read_to_string(project.join("stack.env")).unwrap(),
        fs::read_to_string(project.join("environments/prod/stack.env")).unwrap(),
        text
    );
    for secret in [
        "dev-pg-password-1",
        "prod-hasura-admin-secret-3",
        "staging-jwt-key",
    ] {
        assert!(!all.contains(secret), "{secret}");
    }
    // prod builds once the presets' own secrets exist: backend only, routes through nginx.
    let generated = stack()
        .arg("-C")
        .arg(&project)
        .args(["secrets", "generate", "prod"])
        .output()
        .unwrap();
    assert!(generated.status.success(), "{}", stderr(&generated));
    let built = stack()
        .arg("-C")
        .arg(&project)
        .args(["build", "-e", "prod"])
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", stderr(&built));
    let compose = fs::read_to_string(project.join(".stack/prod/docker-compose.yml")).unwrap();
    assert!(compose.contains("  order-api:"), "{compose}");
    assert!(!compose.contains("  web:"), "{compose}");
    assert!(!compose.contains("prod-pg-password-3"), "{compose}");
    let nginx = fs::read_to_string(project.join(".stack/prod/nginx/nginx.conf")).unwrap();
    assert!(nginx.contains("orders.example.com"), "{nginx}");
    assert!(nginx.contains("api.example.com"), "{nginx}");
    assert!(!nginx.contains("app.example.com"), "{nginx}");
}

#[test]
fn a_folder_without_nself_files_is_refused() {
    let tmp = scratch(&[("README.md", "hello\n")]);
    let output = stack()
        .args(["import", "nself"])
        .arg(tmp.path())
        .arg(tmp.path().join("project"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("is not an nself project"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_secret_in_a_command_or_health_check_is_read_from_the_environment() {
    let tmp = scratch(&[
        (
            "docker-compose.yml",
            "services:\n  cache:\n    image: redis:7\n    command: redis-server --requirepass ${REDIS_PASSWORD}\n    healthcheck:\n      test: [\"CMD\", \"redis-cli\", \"-a\", \"${REDIS_PASSWORD}\", \"ping\"]\n",
        ),
        (".env", "REDIS_PASSWORD=r3d1s-pass-example\n"),
    ]);
    let output = import(tmp.path(), "docker-compose.yml", &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains(
            "service `cache` (line 4): `command`: the secret `REDIS_PASSWORD` is passed in the container's environment"
        ),
        "{text}"
    );
    let project = tmp.path().join("project");
    let env = parse_env(&fs::read_to_string(project.join("stack.env")).unwrap());
    assert_eq!(
        env["SERVICE_CACHE_ENV_REDIS_PASSWORD"],
        "${IMPORTED_REDIS_PASSWORD}"
    );
    assert_eq!(
        env["SERVICE_CACHE_COMMAND"],
        r#"/bin/sh -c 'exec docker-entrypoint.sh redis-server --requirepass \"$${REDIS_PASSWORD}\"'"#
    );
    let built = stack()
        .arg("-C")
        .arg(&project)
        .arg("build")
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", stderr(&built));
    let compose = fs::read_to_string(project.join(".stack/dev/docker-compose.yml")).unwrap();
    assert!(!compose.contains("r3d1s-pass-example"), "{compose}");
    // The container's shell expands it: `$$` is Compose's literal `$`.
    assert!(
        compose.contains(
            "- exec docker-entrypoint.sh redis-server --requirepass \"$${REDIS_PASSWORD}\""
        ),
        "{compose}"
    );
    assert!(
        compose.contains("- redis-cli -a \"$$REDIS_PASSWORD\" ping"),
        "{compose}"
    );
    assert!(
        compose.contains("REDIS_PASSWORD: ${CACHE__REDIS_PASSWORD}"),
        "{compose}"
    );
}

#[test]
fn a_folder_its_override_include_and_profiles_are_read_as_compose_reads_them() {
    let tmp = scratch(&[
        (
            "src/compose.yaml",
            "include:\n  - ./db/compose.yaml\nservices:\n  app:\n    image: app:1\n    restart: ${RESTART_POLICY}\n    environment:\n      LOG_LEVEL: info\n    depends_on: [db]\n  debug:\n    image: busybox\n    profiles: [debug]\n    ports: [\"8080:80\"]\n  tools:\n    image: busybox\n    profiles: [tools]\n    ports: [\"8080:80\"]\n",
        ),
        (
            "src/compose.override.yaml",
            "services:\n  app:\n    ports: [\"3000:3000\"]\n    environment:\n      LOG_LEVEL: debug\n",
        ),
        ("src/.env", "RESTART_POLICY=always\n"),
        (
            "src/db/compose.yaml",
            "services:\n  db:\n    image: postgres:16\n    volumes:\n      - ./data:/var/lib/postgresql/data\n",
        ),
    ]);
    // FILE is the folder: `compose.yaml`, its override and its include, as `docker compose up`.
    let output = stack()
        .args(["import", "compose"])
        .arg(tmp.path().join("src"))
        .arg(tmp.path().join("project"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let env = fs::read_to_string(tmp.path().join("project/stack.env")).unwrap();
    for line in [
        "STACK_SERVICES=app,db\n",
        "SERVICE_APP_PUBLISH=3000:3000\n",
        "SERVICE_APP_ENV_LOG_LEVEL=debug\n",
        "SERVICE_APP_RESTART=${RESTART_POLICY}\n",
        "RESTART_POLICY=always\n",
        "SERVICE_DB_VOLUMES=../src/db/data:/var/lib/postgresql/data\n",
    ] {
        assert!(env.contains(line), "{line} in\n{env}");
    }
    let text = stderr(&output);
    assert!(
        text.contains("not imported: in profile(s) `debug`"),
        "{text}"
    );
    assert!(
        text.contains("`compose.override.yaml`: merged over `compose.yaml`"),
        "{text}"
    );
    // Two profiles publishing the same port are no clash; both activated, they are
    // imported (and the project refuses the clash, as the engine would).
    let output = stack()
        .args(["import", "compose"])
        .arg(tmp.path().join("src/compose.yaml"))
        .arg(tmp.path().join("p2"))
        .args(["--profile", "debug"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let env = fs::read_to_string(tmp.path().join("p2/stack.env")).unwrap();
    assert!(env.contains("STACK_SERVICES=app,debug,db\n"), "{env}");
    // `-f a -f b DIR`: the files merged in order, as given.
    let output = stack()
        .args(["import", "compose", "-f"])
        .arg(tmp.path().join("src/compose.yaml"))
        .arg("-f")
        .arg(tmp.path().join("src/db/compose.yaml"))
        .arg(tmp.path().join("p3"))
        .output()
        .unwrap();
    // `db` is in both (the include and the second file): merged, not defined twice.
    assert!(output.status.success(), "{}", stderr(&output));
    let env = fs::read_to_string(tmp.path().join("p3/stack.env")).unwrap();
    assert!(env.contains("STACK_SERVICES=app,db\n"), "{env}");
    assert!(!env.contains("SERVICE_APP_PUBLISH"), "{env}");
}

/// Names of presets that are not enabled belong to the user: `redis` stays `redis`, and
/// `redis://redis:6379` keeps working. Needs the configuration reader to accept a
/// declared service named like a preset that is off (`src/config/phases.rs`,
/// `Declared::refuse`); until then the import renames it `redis-svc` and lists every
/// value that names the old host.
#[test]
fn services_named_like_presets_keep_their_names() {
    let tmp = scratch(&[(
        "docker-compose.yml",
        "services:\n  app:\n    image: app:1\n    environment:\n      REDIS_URL: redis://redis:6379\n      DATABASE_URL: postgres://app@postgres/app\n    depends_on: [redis, postgres]\n  redis:\n    image: redis:7\n  postgres:\n    image: postgres:16\n    environment:\n      POSTGRES_HOST_AUTH_METHOD: trust\n",
    )]);
    let output = import(tmp.path(), "docker-compose.yml", &["--strict"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let env = fs::read_to_string(tmp.path().join("project/stack.env")).unwrap();
    assert!(env.contains("STACK_SERVICES=app,redis,postgres\n"), "{env}");
    assert!(
        env.contains("SERVICE_APP_DEPENDS_ON=redis,postgres\n"),
        "{env}"
    );
}

#[test]
fn a_renamed_service_lists_the_values_that_name_its_old_host() {
    let tmp = scratch(&[(
        "docker-compose.yml",
        "services:\n  app:\n    image: app:1\n    ports: [\"8080:8080\"]\n    environment:\n      UPSTREAM: http://proxy:3128\n  proxy:\n    image: squid:6\n",
    )]);
    // With `--routes` stack runs its own proxy, so the file's `proxy` is renamed.
    let output = import(tmp.path(), "docker-compose.yml", &["--strict", "--routes"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("`environment.UPSTREAM`: it names the host `proxy`"),
        "{}",
        stderr(&output)
    );
    assert!(!tmp.path().join("project/stack.env").exists());
}

#[test]
fn a_password_named_pass_goes_to_the_secrets_file() {
    let case = case(&repo_root().join("fixtures-compose/authentik"));
    let output = stack()
        .args(["import", "compose"])
        .arg(case.src.join("docker-compose.yml"))
        .arg(&case.project)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let env = fs::read_to_string(case.project.join("stack.env")).unwrap();
    assert!(!env.contains("hunter2"), "{env}");
    assert!(env.contains("SERVICE_SERVER_ENV_AUTHENTIK_POSTGRESQL__PASSWORD=${PG_PASS}\n"));
    let secrets = fs::read_to_string(case.project.join("environments/dev/secrets.env")).unwrap();
    assert!(secrets.contains("PG_PASS='hunter2hunter2'\n"), "{secrets}");
    assert!(!stderr(&output).contains("hunter2"));
}

/// Stops and removes a live project when the test ends, even on failure.
struct LiveProject {
    dir: PathBuf,
    name: String,
}

impl Drop for LiveProject {
    fn drop(&mut self) {
        let _ = stack()
            .arg("-C")
            .arg(&self.dir)
            .args(["down", "--volumes"])
            .output();
        common::remove_project(&self.name);
    }
}

#[test]
fn old_names_container_names_links_and_a_secret_command_work_live() {
    common::require_engine(&["stack-test/redis:7"]);
    let name = format!("ifix-live-{}", std::process::id());
    let compose = format!(
        "name: {name}\nservices:\n  cache_db:\n    image: stack-test/redis:7\n    container_name: legacy_cache\n    command: --requirepass ${{REDIS_PASSWORD}}\n  app:\n    image: stack-test/redis:7\n    command: sleep 600\n    links: [\"cache_db:kv\"]\n"
    );
    let tmp = scratch(&[
        ("docker-compose.yml", &compose),
        (".env", "REDIS_PASSWORD=live-pass-4711\n"),
    ]);
    let output = import(tmp.path(), "docker-compose.yml", &["--strict"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let project = tmp.path().join("project");
    let env = fs::read_to_string(project.join("stack.env")).unwrap();
    assert!(!env.contains("live-pass-4711"), "{env}");
    let _live = LiveProject {
        dir: project.clone(),
        name: name.clone(),
    };
    let started = stack()
        .arg("-C")
        .arg(&project)
        .arg("start")
        .output()
        .unwrap();
    assert!(started.status.success(), "{}", stderr(&started));
    let compose = fs::read_to_string(project.join(".stack/dev/docker-compose.yml")).unwrap();
    assert!(!compose.contains("live-pass-4711"), "{compose}");
    let app = format!("{name}-app-1");
    let ping = |host: &str, password: Option<&str>| {
        let mut args = vec!["exec", app.as_str(), "redis-cli", "-h", host];
        if let Some(password) = password {
            args.extend(["-a", password, "--no-auth-warning"]);
        }
        args.push("ping");
        common::text(&common::docker(&args).stdout)
            .trim()
            .to_string()
    };
    // Every name the Compose file lets the app use reaches the one redis, which wants
    // the password its command was given.
    for host in ["cache-db", "cache_db", "legacy_cache", "kv"] {
        assert_eq!(ping(host, Some("live-pass-4711")), "PONG", "{host}");
    }
    assert!(
        ping("cache_db", None).contains("NOAUTH"),
        "no password asked"
    );
}

/// The host keys are compared: a dropped device, network mode, resolver setting or cgroup
/// knob is a difference; a device's short form equals its full form, a `deploy` limit the
/// service's own key, and `service:NAME` is read under the rendered name.
#[test]
fn host_keys_are_compared() {
    let original = serde_json::json!({"services": {"vpn": {"image": "a"}, "app": {
        "image": "b", "devices": ["/dev/net/tun"], "network_mode": "service:vpn",
        "dns": "1.1.1.1", "pids_limit": 100, "mem_reservation": "64m", "cpuset": "0-1",
        "ipc": "host", "oom_score_adj": -500,
    }}});
    let same = serde_json::json!({"services": {"vpn-1": {"image": "a"}, "app": {
        "image": "b", "devices": ["/dev/net/tun:/dev/net/tun:rwm"],
        "network_mode": "service:vpn-1", "dns": ["1.1.1.1"], "cpuset": "0-1", "ipc": "host",
        "oom_score_adj": -500,
        "deploy": {"resources": {"limits": {"pids": 100}, "reservations": {"memory": "64m"}}},
    }}});
    let renamed = BTreeMap::from([("vpn".to_string(), "vpn-1".to_string())]);
    let differences = compose_equiv::compare(&original, &same, &renamed);
    // (The renamed `vpn` no longer answers to its old name here: not what is compared.)
    let app: Vec<&String> = differences
        .iter()
        .filter(|d| d.starts_with("service `app`"))
        .collect();
    assert!(app.is_empty(), "{differences:?}");
    let dropped = serde_json::json!({"services": {"vpn": {"image": "a"}, "app": {"image": "b"}}});
    let text = compose_equiv::compare(&original, &dropped, &BTreeMap::new()).join("\n");
    for field in [
        "devices",
        "network_mode",
        "dns",
        "pids_limit",
        "mem_reservation",
        "cpuset",
        "ipc",
        "oom_score_adj",
    ] {
        assert!(
            text.contains(&format!("service `app`: {field}:")),
            "{field}: {text}"
        );
    }
}
