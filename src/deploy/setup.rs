//! What `stack server setup` does to a fresh Debian or Ubuntu server, as a list of steps
//! (pure: shell text, no I/O). Each step has a check that exits 0 when the server already
//! is as the step wants it, and an apply that makes it so; every apply is safe to run
//! again, so a setup cut short (a lost connection) is finished by the next run.

use super::ssh::quote;

/// Where Docker comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DockerSource {
    /// The distribution's `docker.io`.
    Distribution,
    /// Docker's own apt repository (`docker-ce`).
    DockerRepository,
}

/// What the server should look like.
#[derive(Debug, Clone)]
pub struct Options {
    pub project: String,
    /// The deploy user (`SERVER_USER`).
    pub user: String,
    /// `SERVER_PATH`.
    pub path: String,
    pub ssh_port: u16,
    /// The public key the deploy user logs in with (one `authorized_keys` line).
    pub public_key: Option<String>,
    pub docker: DockerSource,
    pub firewall: bool,
    pub unattended_upgrades: bool,
    /// `uname -m` of this binary's architecture and the SHA-256 of this binary.
    pub binary: (String, String),
    /// `STACK_TARGET=swarm`: swarm restarts its own tasks, so no unit, no sudo rules for
    /// it and no binary are needed.
    pub swarm: bool,
    /// The swarm's machines (the manager and `SERVER_NODES`, as SSH reaches them): with
    /// the firewall on, only they may reach the swarm's ports (2377, 7946, 4789).
    pub swarm_peers: Vec<String>,
}

/// One step of the setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Short name, e.g. `docker`.
    pub name: &'static str,
    /// What applying it does, for the listing.
    pub does: String,
    /// Exits 0 when nothing is to be done. It may print `skip: REASON` to say the step
    /// does not apply to this server.
    pub check: String,
    pub apply: String,
    /// What the apply reads on its stdin.
    pub stdin: Feed,
}

/// What a step's apply reads on its stdin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    Nothing,
    /// This stack binary.
    Binary,
    /// The swarm's worker join token, a line.
    JoinToken,
}

/// Where the binary is installed.
pub const BINARY: &str = "/usr/local/bin/stack";

/// apt without questions; an install cut short before is finished first.
const APT: &str = "export DEBIAN_FRONTEND=noninteractive; dpkg --configure -a; \
     apt-get update -q -o Acquire::Retries=3 >/dev/null && \
     apt-get install -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold";

/// The steps, in the order they run.
pub fn steps(options: &Options) -> Vec<Step> {
    let user = quote(&options.user);
    let path = quote(&options.path);
    let mut steps = vec![docker(options.docker)];
    if options.firewall {
        steps.push(firewall(options.ssh_port));
        if options.swarm && !options.swarm_peers.is_empty() {
            steps.push(swarm_firewall(&options.swarm_peers));
        }
    }
    if options.unattended_upgrades {
        steps.push(unattended_upgrades());
    }
    if options.user != "root" {
        steps.push(Step {
            name: "deploy user",
            does: format!("create the user `{}`", options.user),
            check: format!("id -u {user} >/dev/null 2>&1"),
            apply: format!("useradd --create-home --user-group --shell /bin/bash {user}"),
            stdin: Feed::Nothing,
        });
        steps.push(Step {
            name: "docker group",
            does: format!("add `{}` to the `docker` group", options.user),
            check: format!("id -nG {user} | tr ' ' '\\n' | grep -qx docker"),
            apply: format!("usermod -aG docker {user}"),
            stdin: Feed::Nothing,
        });
    }
    if let Some(key) = &options.public_key {
        let home = format!("\"$(getent passwd {user} | cut -d: -f6)\"");
        steps.push(Step {
            name: "ssh key",
            does: format!("authorise the deploy key for `{}`", options.user),
            check: format!(
                "grep -qxF {key} {home}/.ssh/authorized_keys 2>/dev/null",
                key = quote(key)
            ),
            apply: format!(
                "h={home}; g=$(id -gn {user}); install -d -m 700 -o {user} -g \"$g\" \"$h/.ssh\"; \
                 printf '%s\\n' {key} >> \"$h/.ssh/authorized_keys\"; \
                 chown {user}:\"$g\" \"$h/.ssh/authorized_keys\"; chmod 600 \"$h/.ssh/authorized_keys\"",
                key = quote(key)
            ),
            stdin: Feed::Nothing,
        });
    }
    steps.push(Step {
        name: "server path",
        does: format!("create `{}` owned by `{}`", options.path, options.user),
        check: format!("[ -d {path} ] && [ \"$(stat -c %U {path})\" = {user} ]"),
        apply: format!("mkdir -p {path} && chown {user}:\"$(id -gn {user})\" {path}"),
        stdin: Feed::Nothing,
    });
    if options.swarm {
        return steps;
    }
    if options.user != "root" {
        let rules = sudoers(options);
        let file = quote(&format!("/etc/sudoers.d/stack-{}", options.project));
        steps.push(Step {
            name: "sudo rules",
            does: format!(
                "let `{}` install and run `{}.service` (and nothing else) with sudo",
                options.user, options.project
            ),
            check: format!("printf '%s' {rules} | cmp -s - {file}", rules = quote(&rules)),
            apply: format!(
                "command -v sudo >/dev/null || {{ {APT} sudo; }}; t=$(mktemp); printf '%s' {rules} > \"$t\"; \
                 visudo -cqf \"$t\" && install -m 0440 \"$t\" {file}; r=$?; rm -f \"$t\"; exit $r",
                rules = quote(&rules)
            ),
            stdin: Feed::Nothing,
        });
    }
    let (arch, sum) = &options.binary;
    steps.push(Step {
        name: "stack binary",
        does: format!("install this stack as `{BINARY}`"),
        check: format!(
            "[ \"$(uname -m)\" = {arch} ] || {{ echo \"skip: the server is $(uname -m), this stack is {arch}\"; exit 0; }}; \
             sha256sum {BINARY} 2>/dev/null | grep -q '^{sum} '",
            arch = quote(arch)
        ),
        apply: format!(
            "cat > {BINARY}.new && chmod 755 {BINARY}.new && mv {BINARY}.new {BINARY} && {BINARY} --version >/dev/null"
        ),
        stdin: Feed::Binary,
    });
    steps
}

/// The swarm state of the server's engine, as `docker info` says it.
const SWARM_STATE: &str =
    "docker info --format '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}'";

/// The manager of a swarm (`STACK_TARGET=swarm`): a swarm initialised here, advertised
/// at `address` (the address the other machines reach it at), unless it already is a
/// manager.
pub fn swarm_manager(address: &str) -> Step {
    Step {
        name: "swarm manager",
        does: format!("initialise a swarm, advertised at `{address}`"),
        check: format!("[ \"$({SWARM_STATE})\" = 'active true' ]"),
        apply: format!(
            "docker swarm init --advertise-addr {address}",
            address = quote(address)
        ),
        stdin: Feed::Nothing,
    }
}

/// One of `SERVER_NODES`: joined to the swarm of `manager` (`host:2377`) with `token`,
/// unless it is in a swarm already. The token is a credential: it is read on the stdin
/// of the apply and reaches the engine in the body of its `/swarm/join` request, built
/// by the shell's `printf` (a builtin: no process has it on its command line, which
/// `docker swarm join --token` would show to every user in `ps`).
pub fn swarm_worker(manager: &str) -> Step {
    let body = format!(
        "{{\"JoinToken\":\"%s\",\"RemoteAddrs\":[\"{manager}\"],\"ListenAddr\":\"0.0.0.0:2377\"}}"
    );
    Step {
        name: "swarm worker",
        does: format!("join the swarm of `{manager}`"),
        check: format!("[ \"$({SWARM_STATE} | cut -d' ' -f1)\" = active ]"),
        apply: format!(
            "command -v curl >/dev/null || {{ {APT} curl >/dev/null; }}; \
             read -r token && case \"$token\" in *[!A-Za-z0-9-]*|'') echo 'the join token is malformed' >&2; exit 1;; esac; \
             out=$(mktemp) && code=$(printf {body} \"$token\" | curl -sS -o \"$out\" -w '%{{http_code}}' \
             --unix-socket /var/run/docker.sock -H 'Content-Type: application/json' --data-binary @- \
             http://localhost/swarm/join); r=$?; [ $r = 0 ] && [ \"$code\" = 200 ] || {{ cat \"$out\" >&2; echo >&2; r=1; }}; \
             rm -f \"$out\"; exit $r",
            body = quote(&body)
        ),
        stdin: Feed::JoinToken,
    }
}

fn docker(source: DockerSource) -> Step {
    let check = "command -v dockerd >/dev/null && systemctl is-enabled -q docker && systemctl is-active -q docker"
        .to_string();
    match source {
        DockerSource::Distribution => Step {
            name: "docker",
            does: "install Docker from the distribution (docker.io) and start it".into(),
            check,
            apply: format!("{APT} docker.io && systemctl enable --now docker"),
            stdin: Feed::Nothing,
        },
        DockerSource::DockerRepository => Step {
            name: "docker",
            does: "install Docker from Docker's apt repository (docker-ce) and start it".into(),
            check,
            apply: format!(
                ". /etc/os-release; {APT} ca-certificates curl && install -d -m 0755 /etc/apt/keyrings && \
                 curl -fsSL \"https://download.docker.com/linux/$ID/gpg\" -o /etc/apt/keyrings/docker.asc && \
                 chmod a+r /etc/apt/keyrings/docker.asc && \
                 echo \"deb [arch=$(dpkg --print-architecture) signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/$ID $VERSION_CODENAME stable\" \
                 > /etc/apt/sources.list.d/docker.list && \
                 {APT} docker-ce docker-ce-cli containerd.io && systemctl enable --now docker"
            ),
            stdin: Feed::Nothing,
        },
    }
}

fn firewall(ssh_port: u16) -> Step {
    let ports = [
        format!("{ssh_port}/tcp"),
        "80/tcp".into(),
        "443/tcp".into(),
        "443/udp".into(),
    ];
    let check = format!(
        "command -v ufw >/dev/null && s=$(ufw status verbose) && echo \"$s\" | grep -q '^Status: active' \
         && echo \"$s\" | grep -q 'deny (incoming)'{}",
        ports
            .iter()
            .map(|p| format!(" && echo \"$s\" | grep -qE '^{p} +ALLOW IN'"))
            .collect::<String>()
    );
    Step {
        name: "firewall",
        does: format!(
            "ufw: deny incoming but SSH ({ssh_port}), 80 and 443; allow outgoing"
        ),
        check,
        apply: format!(
            "{APT} ufw && ufw default deny incoming && ufw default allow outgoing{} && ufw --force enable",
            ports
                .iter()
                .map(|p| format!(" && ufw allow {p}"))
                .collect::<String>()
        ),
        stdin: Feed::Nothing,
    }
}

/// The swarm's ports, open only to the swarm's machines: 2377/tcp (cluster management),
/// 7946/tcp+udp (node gossip), 4789/udp (overlay traffic). A peer's name is resolved on
/// the server (ufw takes addresses).
fn swarm_firewall(peers: &[String]) -> Step {
    let names: Vec<String> = peers.iter().map(|p| quote(p)).collect();
    let names = names.join(" ");
    let addresses =
        format!("for p in {names}; do getent ahostsv4 \"$p\" | awk '{{print $1}}'; done | sort -u");
    Step {
        name: "swarm firewall",
        does: format!(
            "ufw: open the swarm's ports (2377/tcp, 7946/tcp+udp, 4789/udp) to {} only",
            peers.join(", ")
        ),
        check: format!(
            "s=$(ufw status) && a=$({addresses}) && [ -n \"$a\" ] && for ip in $a; do \
             echo \"$s\" | grep -qE \"^2377,7946/tcp +ALLOW +$ip\" && \
             echo \"$s\" | grep -qE \"^4789,7946/udp +ALLOW +$ip\" || exit 1; done"
        ),
        apply: format!(
            "a=$({addresses}) && [ -n \"$a\" ] || {{ echo 'cannot resolve the swarm machines' >&2; exit 1; }}; \
             for ip in $a; do ufw allow proto tcp from \"$ip\" to any port 2377,7946 >/dev/null && \
             ufw allow proto udp from \"$ip\" to any port 4789,7946 >/dev/null || exit 1; done"
        ),
        stdin: Feed::Nothing,
    }
}

fn unattended_upgrades() -> Step {
    let periodic =
        "APT::Periodic::Update-Package-Lists \"1\";\nAPT::Periodic::Unattended-Upgrade \"1\";\n";
    Step {
        name: "unattended upgrades",
        does: "install unattended-upgrades (security updates) and turn it on".into(),
        check: format!(
            "dpkg -s unattended-upgrades >/dev/null 2>&1 && printf '%s' {p} | cmp -s - /etc/apt/apt.conf.d/20auto-upgrades",
            p = quote(periodic)
        ),
        apply: format!(
            "{APT} unattended-upgrades && printf '%s' {p} > /etc/apt/apt.conf.d/20auto-upgrades",
            p = quote(periodic)
        ),
        stdin: Feed::Nothing,
    }
}

/// The sudo rules a deploy needs, as `stack deploy` runs them (both `/usr/bin` and `/bin`
/// paths, for systems without a merged `/usr`). The `docker` group is root-equivalent
/// already; these rules add nothing beyond the project's unit and the binary.
fn sudoers(options: &Options) -> String {
    let unit = format!("{}.service", options.project);
    let release_unit = format!("{}/releases/*/{unit}", options.path);
    let commands = [
        format!("install -m 0644 {release_unit} /etc/systemd/system/{unit}"),
        "systemctl daemon-reload".to_string(),
        format!("systemctl enable {unit}"),
        format!("systemctl start {unit}"),
        format!("systemctl reload {unit}"),
        format!("sh -c cat > {BINARY}.new && chmod 755 {BINARY}.new && mv {BINARY}.new {BINARY}"),
    ];
    let mut list = Vec::new();
    for command in &commands {
        for dir in ["/usr/bin", "/bin"] {
            list.push(format!("{dir}/{command}"));
        }
    }
    format!(
        "# Written by stack server setup: what `stack deploy` of `{}` runs as root.\n{} ALL=(root) NOPASSWD: {}\n",
        options.project,
        options.user,
        list.join(", \\\n    ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options {
        Options {
            project: "shop".into(),
            user: "deploy".into(),
            path: "/opt/shop".into(),
            ssh_port: 22,
            public_key: Some("ssh-ed25519 AAAA me@laptop".into()),
            docker: DockerSource::Distribution,
            firewall: false,
            unattended_upgrades: false,
            binary: ("x86_64".into(), "ab12".into()),
            swarm: false,
            swarm_peers: Vec::new(),
        }
    }

    fn names(steps: &[Step]) -> Vec<&str> {
        steps.iter().map(|s| s.name).collect()
    }

    #[test]
    fn a_deploy_user_gets_every_step_in_order() {
        assert_eq!(
            names(&steps(&options())),
            [
                "docker",
                "deploy user",
                "docker group",
                "ssh key",
                "server path",
                "sudo rules",
                "stack binary"
            ]
        );
    }

    #[test]
    fn root_needs_no_user_group_or_sudo() {
        let mut root = options();
        root.user = "root".into();
        root.public_key = None;
        assert_eq!(
            names(&steps(&root)),
            ["docker", "server path", "stack binary"]
        );
    }

    #[test]
    fn firewall_and_upgrades_only_when_asked() {
        let mut all = options();
        all.firewall = true;
        all.unattended_upgrades = true;
        all.ssh_port = 2222;
        let steps = steps(&all);
        assert_eq!(
            &names(&steps)[..3],
            ["docker", "firewall", "unattended upgrades"]
        );
        let firewall = &steps[1];
        for port in ["2222/tcp", "80/tcp", "443/tcp"] {
            assert!(
                firewall.apply.contains(&format!("ufw allow {port}")),
                "{}",
                firewall.apply
            );
            assert!(firewall.check.contains(port));
        }
        assert!(firewall.apply.contains("ufw default deny incoming"));
    }

    #[test]
    fn the_key_and_names_are_quoted_for_the_shell() {
        let mut odd = options();
        odd.public_key = Some("ssh-ed25519 AAAA it's $(me)".into());
        let key = steps(&odd)
            .into_iter()
            .find(|s| s.name == "ssh key")
            .unwrap();
        assert!(
            key.apply.contains(r"'ssh-ed25519 AAAA it'\''s $(me)'"),
            "{}",
            key.apply
        );
    }

    #[test]
    fn sudo_rules_name_the_project_unit_only() {
        let rules = sudoers(&options());
        assert!(rules.starts_with("# Written by stack server setup"));
        assert!(rules.contains("deploy ALL=(root) NOPASSWD: /usr/bin/install -m 0644 /opt/shop/releases/*/shop.service /etc/systemd/system/shop.service"));
        assert!(rules.contains("/bin/systemctl start shop.service"));
        assert!(!rules.contains("ALL=(ALL)"));
        assert!(!rules.contains("NOPASSWD: ALL"));
    }

    #[test]
    fn the_docker_repository_is_only_used_when_asked() {
        let mut repo = options();
        assert!(!steps(&repo)[0].apply.contains("download.docker.com"));
        repo.docker = DockerSource::DockerRepository;
        assert!(steps(&repo)[0].apply.contains("download.docker.com"));
        assert!(steps(&repo)[0].apply.contains("docker-ce"));
    }

    #[test]
    fn the_swarm_ports_open_to_the_swarm_machines_only_with_the_firewall_on() {
        let swarm = Options {
            swarm: true,
            firewall: true,
            swarm_peers: vec!["10.0.0.1".into(), "node-2.internal".into()],
            ..options()
        };
        let all = steps(&swarm);
        let step = all.iter().find(|s| s.name == "swarm firewall").unwrap();
        assert!(
            step.apply.contains("'10.0.0.1' 'node-2.internal'"),
            "{}",
            step.apply
        );
        assert!(step.apply.contains("from \"$ip\" to any port 2377,7946"));
        assert!(step.apply.contains("from \"$ip\" to any port 4789,7946"));
        // Never open to anyone: no rule without `from`.
        assert!(!step.apply.contains("ufw allow 2377"));
        let off = steps(&Options {
            firewall: false,
            ..swarm
        });
        assert!(off.iter().all(|s| s.name != "swarm firewall"));
    }

    #[test]
    fn a_swarm_machine_needs_no_unit_rules_or_binary() {
        let steps = steps(&Options {
            swarm: true,
            swarm_peers: vec!["10.0.0.1".into(), "node-2.internal".into()],
            ..options()
        });
        assert_eq!(
            names(&steps),
            [
                "docker",
                "deploy user",
                "docker group",
                "ssh key",
                "server path"
            ]
        );
    }

    #[test]
    fn the_join_token_is_never_on_a_command_line() {
        let step = swarm_worker("10.0.0.1:2377");
        assert!(step.apply.contains("read -r token"), "{}", step.apply);
        assert_eq!(step.stdin, Feed::JoinToken, "the token goes on stdin");
        assert!(!step.does.contains("token"));
        // Not `docker swarm join --token "$token"`: the CLI's arguments show in `ps`.
        assert!(!step.apply.contains("docker swarm join"), "{}", step.apply);
        assert!(step.apply.contains("/swarm/join"), "{}", step.apply);
    }
}
