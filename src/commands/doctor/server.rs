//! The server's checks: SSH key and known host, the connection, its engine, disk,
//! memory and clock.

use super::*;

/// The server: key, known_hosts, connection, engine, disk, memory, clock, and per
/// routed host DNS and certificate.
pub(super) fn server_checks(
    runtime: &tokio::runtime::Runtime,
    config: &Config,
    server: &Server,
    desired: &Desired,
) -> Vec<Check> {
    let settings = ssh_settings(server);
    let mut checks = vec![ssh_key(server, &settings), known_host(server, &settings)];
    let session = match Session::open(server) {
        Ok(session) => session,
        Err(err) => {
            let mut check = Check::from_error("server", &err, "check SERVER_HOST and SERVER_PORT");
            check.detail = format!(
                "{} (its engine, disk, memory and clock were not checked)",
                check.detail
            );
            checks.push(check);
            checks.extend(routes(config, server, desired));
            return checks;
        }
    };
    checks.push(Check::ok(
        "server",
        format!(
            "`{}` port {} answers over SSH",
            session.target(),
            server.port
        ),
    ));
    checks.push(runtime.block_on(async {
        match Engine::connect_to(&session.docker_endpoint()).await {
            Ok(engine) => engine_check("server engine", &engine).await,
            Err(err) => Check::from_error(
                "server engine",
                &err,
                &format!(
                    "run `stack server setup {}`, or check that `{}` is in the `docker` group",
                    config.env, server.user
                ),
            ),
        }
    }));
    checks.extend(resources(&session, server, desired));
    checks.extend(routes(config, server, desired));
    checks
}

/// `ssh -G`'s view of the server (what `~/.ssh/config` and `STACK_SSH_CONFIG` make of it).
pub(super) fn ssh_settings(server: &Server) -> Vec<(String, String)> {
    let mut command = Command::new("ssh");
    if let Ok(file) = std::env::var("STACK_SSH_CONFIG") {
        if !file.is_empty() {
            command.args(["-F", &file]);
        }
    }
    let output = command
        .args(["-G", "-p", &server.port.to_string()])
        .arg(format!("{}@{}", server.user, server.host))
        .stdin(Stdio::null())
        .output();
    let Ok(output) = output else {
        return Vec::new();
    };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

pub(super) fn setting<'a>(settings: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    settings
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

pub(super) fn expand_home(path: &str) -> String {
    match (path.strip_prefix("~/"), std::env::var("HOME")) {
        (Some(rest), Ok(home)) => Path::new(&home).join(rest).display().to_string(),
        _ => path.to_string(),
    }
}

/// The key ssh will offer: `SERVER_SSH_KEY`, else the agent's, else an identity file
/// of ssh's configuration that exists.
pub(super) fn ssh_key(server: &Server, settings: &[(String, String)]) -> Check {
    let name = "ssh key";
    if let Some(key) = &server.ssh_key {
        use std::os::unix::fs::PermissionsExt;
        let path = expand_home(key);
        return match std::fs::metadata(&path) {
            Err(_) => Check::failure(
                name,
                format!("SERVER_SSH_KEY `{path}` does not exist"),
                format!("create it (`ssh-keygen -t ed25519 -f {path}`) or correct SERVER_SSH_KEY"),
            ),
            Ok(meta) if meta.permissions().mode() & 0o077 != 0 => Check::failure(
                name,
                format!("`{path}` can be read by other users, so ssh refuses it"),
                format!("chmod 600 {path}"),
            ),
            Ok(_) => Check::ok(name, format!("SERVER_SSH_KEY `{path}`")),
        };
    }
    if std::env::var_os("SSH_AUTH_SOCK").is_some() {
        let listed = Command::new("ssh-add")
            .arg("-l")
            .stdin(Stdio::null())
            .output();
        if let Ok(listed) = listed {
            let keys = String::from_utf8_lossy(&listed.stdout).lines().count();
            if listed.status.success() && keys > 0 {
                return Check::ok(name, format!("the SSH agent holds {keys} key(s)"));
            }
        }
    }
    let files: Vec<String> = setting(settings, "identityfile")
        .into_iter()
        .map(expand_home)
        .filter(|f| Path::new(f).is_file())
        .collect();
    if let Some(file) = files.first() {
        return Check::ok(name, format!("no agent key; ssh offers `{file}`"));
    }
    Check::failure(
        name,
        "no SSH key: SERVER_SSH_KEY is not set, no agent holds a key and ssh has no identity file",
        "set SERVER_SSH_KEY in the environment's server.env, or load a key into an agent (`eval \"$(ssh-agent -s)\" && ssh-add KEY`)",
    )
}

/// The server's host key is in a known_hosts file ssh reads (stack connects with
/// `StrictHostKeyChecking=yes`).
pub(super) fn known_host(server: &Server, settings: &[(String, String)]) -> Check {
    let name = "known host";
    let entry = if server.port == 22 {
        server.host.clone()
    } else {
        format!("[{}]:{}", server.host, server.port)
    };
    let files: Vec<String> = setting(settings, "userknownhostsfile")
        .into_iter()
        .flat_map(|v| v.split_whitespace().map(expand_home).collect::<Vec<_>>())
        .chain(["/etc/ssh/ssh_known_hosts".to_string()])
        .filter(|f| Path::new(f).is_file())
        .collect();
    for file in &files {
        let found = Command::new("ssh-keygen")
            .args(["-F", &entry, "-f", file])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if found.is_ok_and(|s| s.success()) {
            return Check::ok(name, format!("`{entry}` is in `{file}`"));
        }
    }
    Check::failure(
        name,
        format!("the host key of `{entry}` is in no known_hosts file"),
        format!(
            "check its fingerprint, then `ssh-keyscan -p {} {} >> ~/.ssh/known_hosts`",
            server.port, server.host
        ),
    )
}

pub(super) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Free disk under SERVER_PATH, memory against the project's limits, the clock.
pub(super) fn resources(session: &Session, server: &Server, desired: &Desired) -> Vec<Check> {
    let script = format!(
        "p={}; while [ ! -e \"$p\" ]; do p=$(dirname \"$p\"); done; \
         df -Pk \"$p\" | tail -n 1; grep -E '^(MemTotal|MemAvailable):' /proc/meminfo; date +%s.%N",
        quote(&server.path)
    );
    let before = now();
    let output = match session.run(&script, None) {
        Ok(output) if output.status.success() => output,
        Ok(output) => {
            let err = Error::Outside {
                message: "cannot read the server's disk, memory and clock".into(),
                causes: vec![String::from_utf8_lossy(&output.stderr).trim().to_string()],
                hint: None,
            };
            return vec![Check::from_error(
                "server resources",
                &err,
                "check that `df` and /proc/meminfo are there",
            )];
        }
        Err(err) => {
            return vec![Check::from_error(
                "server resources",
                &err,
                "check the connection",
            )]
        }
    };
    let middle = (before + now()) / 2.0;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut lines = text.lines();
    let disk = lines.next().unwrap_or_default();
    let mut memory = (0u64, 0u64);
    let mut clock = None;
    for line in lines {
        let kb = || {
            line.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
                * 1024
        };
        if line.starts_with("MemTotal:") {
            memory.0 = kb();
        } else if line.starts_with("MemAvailable:") {
            memory.1 = kb();
        } else {
            clock = line.trim().parse::<f64>().ok();
        }
    }
    vec![
        disk_check(disk, &server.path),
        memory_check(memory, desired),
        clock_check(clock.map(|remote| remote - middle)),
    ]
}

pub(super) fn disk_check(df_line: &str, path: &str) -> Check {
    let name = "server disk";
    let free = df_line
        .split_whitespace()
        .nth(3)
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kb| kb * 1024);
    let Some(free) = free else {
        return Check::warning(
            name,
            format!("cannot read `df` of `{path}`: {df_line}"),
            "check `df -Pk` on the server",
        );
    };
    let detail = format!("{} free under `{path}`", crate::printer::human(free));
    let fix = "free space (`docker system prune`, old releases) or grow the disk";
    if free < DISK_FAIL {
        Check::failure(
            name,
            format!("{detail}; images and releases need more than 1 GB"),
            fix,
        )
    } else if free < DISK_LOW {
        Check::warning(name, format!("{detail}; less than 5 GB left"), fix)
    } else {
        Check::ok(name, detail)
    }
}

/// The memory the project's containers may use: the sum of `MEMORY` limits × replicas.
pub(super) fn memory_check((total, available): (u64, u64), desired: &Desired) -> Check {
    let name = "server memory";
    let needed: u64 = desired
        .services
        .iter()
        .filter_map(|s| {
            s.resources
                .memory_mb
                .map(|mb| mb * 1024 * 1024 * u64::from(s.replicas.max(1)))
        })
        .sum();
    let human = crate::printer::human;
    let detail = format!("{} available of {}", human(available), human(total));
    let fix = "lower the services' `MEMORY` limits, or give the server more memory";
    if total == 0 {
        Check::warning(
            name,
            "cannot read /proc/meminfo",
            "check /proc on the server",
        )
    } else if needed > total {
        Check::failure(
            name,
            format!("{detail}; the services' limits add up to {}", human(needed)),
            fix,
        )
    } else if needed > available {
        Check::warning(
            name,
            format!("{detail}; the services' limits add up to {}", human(needed)),
            fix,
        )
    } else if needed > 0 {
        Check::ok(
            name,
            format!("{detail}; the services' limits add up to {}", human(needed)),
        )
    } else {
        Check::ok(name, format!("{detail}; no service sets `MEMORY`"))
    }
}

pub(super) fn clock_check(skew: Option<f64>) -> Check {
    let name = "server clock";
    let Some(skew) = skew else {
        return Check::warning(
            name,
            "cannot read the server's clock",
            "check `date +%s` on the server",
        );
    };
    let detail = format!(
        "{:.1} s {} this machine's",
        skew.abs(),
        if skew >= 0.0 { "ahead of" } else { "behind" }
    );
    let fix = "run NTP on both machines (`timedatectl set-ntp true`)";
    if skew.abs() > CLOCK_FAIL {
        Check::failure(name, detail, fix)
    } else if skew.abs() > CLOCK_WARN {
        Check::warning(name, detail, fix)
    } else {
        Check::ok(name, detail)
    }
}
