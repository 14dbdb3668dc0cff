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
    /// A `.deb` of stack to install instead of copying the binary (then it is what the
    /// apply of the `stack package` step reads on stdin).
    pub package: Option<Package>,
    /// The project's unit with slots for what a deploy may change
    /// ([`crate::render::unit_skeleton`]): the root helper renders it, so it never
    /// installs a file the deploy user wrote.
    pub unit: String,
    /// `STACK_TARGET=swarm`: swarm restarts its own tasks, so no unit, no sudo rules for
    /// it and no binary are needed.
    pub swarm: bool,
    /// The swarm's machines (the manager and `SERVER_NODES`, as SSH reaches them): with
    /// the firewall on, only they may reach the swarm's ports (2377, 7946, 4789).
    pub swarm_peers: Vec<String>,
}

/// A `.deb` of stack (`scripts/build-deb.sh`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// Its Debian architecture (`amd64`, `arm64`).
    pub arch: String,
    /// Its `Version` field.
    pub version: String,
    /// The SHA-256 of the `.deb` file.
    pub sha256: String,
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
    /// This stack binary, or with [`Options::package`] that `.deb`.
    Binary,
    /// The swarm's worker join token, a line.
    JoinToken,
}

/// Where the binary is installed.
pub const BINARY: &str = "/usr/local/bin/stack";

/// The SHA-256 of the `.deb` the `stack package` step installed last.
pub const PACKAGE_MARK: &str = "/var/lib/stack/package.sha256";

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
    steps.extend(user_steps(options));
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
        steps.extend(sudo_steps(options));
    }
    if let Some(package) = &options.package {
        steps.push(package_step(package));
        return steps;
    }
    let (arch, sum) = &options.binary;
    steps.push(Step {
        name: "stack binary",
        does: format!("install this stack as `{BINARY}` (for admins; the unit runs its own copy)"),
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

/// The deploy user (unless `root`), its `docker` group, and the deploy key.
fn user_steps(options: &Options) -> Vec<Step> {
    let user = quote(&options.user);
    let mut steps = Vec::new();
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
    steps
}

/// The root helper and the sudo rule that lets the deploy user run it, and nothing else.
fn sudo_steps(options: &Options) -> Vec<Step> {
    let mut steps = Vec::new();
    let helper = root_helper_path(&options.project);
    let script = root_helper(options, &SYSTEM);
    steps.push(Step {
        name: "root helper",
        does: format!(
            "write `{helper}` (root's, 0755): it installs `{}.service` from its own text and enables, starts and reloads it",
            options.project
        ),
        check: format!(
            "printf '%s' {script} | cmp -s - {file} && [ \"$(stat -c '%U:%G %a' {file})\" = 'root:root 755' ]",
            script = quote(&script),
            file = quote(&helper)
        ),
        apply: format!(
            "install -d -m 0755 /usr/local/sbin && t=$(mktemp /usr/local/sbin/.stack-root.XXXXXX) && \
             printf '%s' {script} > \"$t\" && chown root:root \"$t\" && chmod 0755 \"$t\" && mv -f \"$t\" {file}",
            script = quote(&script),
            file = quote(&helper)
        ),
        stdin: Feed::Nothing,
    });
    let rules = sudoers(options);
    let file = quote(&format!("/etc/sudoers.d/stack-{}", options.project));
    steps.push(Step {
        name: "sudo rules",
        does: format!(
            "let `{}` run `{helper}` as root with sudo, and nothing else",
            options.user
        ),
        check: format!("printf '%s' {rules} | cmp -s - {file}", rules = quote(&rules)),
        apply: format!(
            "command -v sudo >/dev/null || {{ {APT} sudo; }}; t=$(mktemp); printf '%s' {rules} > \"$t\"; \
             visudo -cqf \"$t\" && install -m 0440 \"$t\" {file}; r=$?; rm -f \"$t\"; exit $r",
            rules = quote(&rules)
        ),
        stdin: Feed::Nothing,
    });
    steps
}

/// Install stack's `.deb` with apt (its `/usr/bin/stack`, man pages and completions)
/// and remove a binary an older setup copied to [`BINARY`], which would shadow it.
/// Done when the package is installed, was this very file, and no copy shadows it.
fn package_step(package: &Package) -> Step {
    let arch = quote(&package.arch);
    let sum = quote(&package.sha256);
    Step {
        name: "stack package",
        does: format!(
            "install the package stack {} ({}) with apt, for admins (the unit runs its own copy)",
            package.version, package.arch
        ),
        check: format!(
            "command -v dpkg >/dev/null || {{ echo 'skip: the server has no dpkg'; exit 0; }}; \
             a=$(dpkg --print-architecture); [ \"$a\" = {arch} ] || {{ echo \"skip: the server is $a, the package is {arch}\"; exit 0; }}; \
             [ \"$(dpkg-query -W -f='${{db:Status-Status}}' stack 2>/dev/null)\" = installed ] && \
             grep -qxF {sum} {PACKAGE_MARK} 2>/dev/null && [ ! -e {BINARY} ]"
        ),
        apply: format!(
            "t=$(mktemp -d) && cat > \"$t/stack.deb\" && echo {sum}\"  $t/stack.deb\" | sha256sum -c --quiet - && \
             export DEBIAN_FRONTEND=noninteractive && dpkg --configure -a && \
             apt-get install -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \"$t/stack.deb\" && \
             rm -f {BINARY} && /usr/bin/stack --version >/dev/null && \
             install -d -m 0755 \"$(dirname {PACKAGE_MARK})\" && echo {sum} > {PACKAGE_MARK}; r=$?; rm -rf \"$t\"; exit $r"
        ),
        stdin: Feed::Binary,
    }
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

/// The root helper of `project`: the one command its sudo rules allow.
pub fn root_helper_path(project: &str) -> String {
    format!("/usr/local/sbin/stack-root-{project}")
}

/// Where the root helper installs the unit and the `systemctl` it runs (others in tests).
struct Places<'a> {
    units: &'a str,
    systemctl: &'a str,
}

const SYSTEM: Places = Places {
    units: "/etc/systemd/system",
    systemctl: "systemctl",
};

/// The sudo rules: the deploy user may run the root helper as root, nothing else. A
/// command without arguments in sudoers allows any; the helper checks them. The `docker`
/// group is root-equivalent already; the rules add no second way to root.
fn sudoers(options: &Options) -> String {
    format!(
        "# Written by stack server setup: `stack deploy` of `{}` runs this helper as root, and nothing else.\n\
         {} ALL=(root) NOPASSWD: {}\n",
        options.project,
        options.user,
        root_helper_path(&options.project)
    )
}

/// The root helper (`sh`): `install-unit RELEASE` renders the unit from the text stack
/// gave at setup ([`Options::unit`]) with the release's header line and timeouts, each
/// checked, installs it only when that is the release's unit byte for byte, and runs
/// `daemon-reload`; `daemon-reload`, and `enable`, `start`, `reload` of the project's
/// unit (only when the installed file is stack's). Nothing else, no other argument.
fn root_helper(options: &Options, places: &Places) -> String {
    let (format, args) = unit_printf(&options.unit);
    let project = &options.project;
    fill(
        ROOT_HELPER,
        &[
            ("user", options.user.clone()),
            ("project", project.clone()),
            ("root", quote(&options.path)),
            ("name", quote(&format!("{project}.service"))),
            ("units", quote(places.units)),
            ("systemctl", quote(places.systemctl)),
            ("format", quote(&format)),
            ("args", args.join(" ")),
        ],
    )
}

/// The root helper's text: `@@name@@` slots filled by [`fill`].
const ROOT_HELPER: &str = include_str!("root-helper.sh");

/// The unit skeleton as a printf format: its slots become `%s`, taken in the order they
/// appear in, each the shell variable that holds the checked value.
fn unit_printf(unit: &str) -> (String, Vec<&'static str>) {
    let names = ["\"$h\"", "\"$a\"", "\"$b\""];
    let mut rest = unit.replace('\\', "\\\\").replace('%', "%%");
    let (mut format, mut args) = (String::new(), Vec::new());
    while let Some((at, slot)) = crate::render::UNIT_SLOTS
        .iter()
        .enumerate()
        .filter_map(|(i, slot)| rest.find(slot).map(|at| (at, i)))
        .min()
    {
        format.push_str(&rest[..at]);
        format.push_str("%s");
        args.push(names[slot]);
        rest = rest[at + crate::render::UNIT_SLOTS[slot].len()..].to_string();
    }
    format.push_str(&rest);
    (format, args)
}

/// `template` with each `@@key@@` replaced by its value, in one pass (a value is never
/// scanned again); an unknown key is a bug, kept visible in the output.
fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(at) = rest.find("@@") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let found = after.find("@@").and_then(|end| {
            let key = &after[..end];
            values
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (v, end))
        });
        match found {
            Some((value, end)) => {
                out.push_str(value);
                rest = &after[end + 2..];
            }
            None => {
                out.push_str("@@");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
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
            package: None,
            unit: UNIT.into(),
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
                "root helper",
                "sudo rules",
                "stack binary"
            ]
        );
    }

    #[test]
    fn a_package_replaces_the_binary_copy() {
        let options = Options {
            package: Some(Package {
                arch: "amd64".into(),
                version: "0.1.0".into(),
                sha256: "cd34".into(),
            }),
            ..options()
        };
        let steps = steps(&options);
        let names = names(&steps);
        assert_eq!(names.last(), Some(&"stack package"));
        assert!(!names.contains(&"stack binary"), "{names:?}");
        let step = steps.last().unwrap();
        assert_eq!(step.stdin, Feed::Binary);
        // The file is checked against its sum before apt installs it, and the copy an
        // older setup made (which would shadow /usr/bin/stack) goes.
        let sum_checked = step.apply.find("sha256sum -c").unwrap();
        let installed = step.apply.find("apt-get install").unwrap();
        assert!(sum_checked < installed, "{}", step.apply);
        assert!(
            step.apply.contains("rm -f /usr/local/bin/stack"),
            "{}",
            step.apply
        );
        assert!(
            step.check
                .contains("grep -qxF 'cd34' /var/lib/stack/package.sha256"),
            "{}",
            step.check
        );
        assert!(step.check.contains("skip: the server is"), "{}", step.check);
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
    fn sudo_rules_allow_the_root_helper_only() {
        let rules = sudoers(&options());
        assert!(rules.starts_with("# Written by stack server setup"));
        let lines: Vec<&str> = rules.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            ["deploy ALL=(root) NOPASSWD: /usr/local/sbin/stack-root-shop"]
        );
        // `*` matches spaces in sudoers: no pattern, no other command.
        assert!(!rules.contains('*'), "{rules}");
        for other in [
            "install",
            "systemctl",
            "sh -c",
            "ALL=(ALL)",
            "NOPASSWD: ALL",
        ] {
            assert!(!rules.contains(other), "{rules}");
        }
        let step = steps(&options())
            .into_iter()
            .find(|s| s.name == "sudo rules")
            .unwrap();
        assert!(
            step.does.contains("/usr/local/sbin/stack-root-shop"),
            "{}",
            step.does
        );
    }

    #[test]
    fn the_root_helper_is_written_root_owned_and_checked() {
        let step = steps(&options())
            .into_iter()
            .find(|s| s.name == "root helper")
            .unwrap();
        assert!(step.check.contains("'root:root 755'"), "{}", step.check);
        assert!(step.apply.contains("chown root:root"), "{}", step.apply);
        assert!(
            step.apply.contains("/usr/local/sbin/stack-root-shop"),
            "{}",
            step.apply
        );
    }

    /// A skeleton with what a printf format must keep as it is (`%`, `\`, `'`, `$`).
    const UNIT: &str = "@STACK_HEADER@\n[Service]\nUser=deploy\n\
        Environment=X=100%s it's \\n $MAINPID\n\
        ExecStart=/opt/shop/bin/stack supervise --bundle /opt/shop/current\n\
        TimeoutStartSec=@STACK_START@\nTimeoutStopSec=@STACK_STOP@\n";

    fn filled(header: &str, start: &str, stop: &str) -> String {
        UNIT.replace("@STACK_HEADER@", header)
            .replace("@STACK_START@", start)
            .replace("@STACK_STOP@", stop)
    }

    const HEADER: &str =
        "# Generated by stack 0.1.0 from stack.env for environment `prod`. Do not edit.";

    /// The root helper against a temporary `SERVER_PATH` and unit folder, with a
    /// `systemctl` that writes down what it was asked.
    struct Helper {
        dir: tempfile::TempDir,
    }

    impl Helper {
        fn new() -> Helper {
            let dir = tempfile::tempdir().unwrap();
            let at = |p: &str| dir.path().join(p).to_str().unwrap().to_string();
            std::fs::create_dir_all(at("units")).unwrap();
            std::fs::create_dir_all(at("opt/shop/releases")).unwrap();
            std::fs::write(
                at("systemctl"),
                format!("#!/bin/sh\necho \"$*\" >> {}\n", at("log")),
            )
            .unwrap();
            let script = root_helper(
                &Options {
                    path: at("opt/shop"),
                    ..options()
                },
                &Places {
                    units: &at("units"),
                    systemctl: &at("systemctl"),
                },
            );
            std::fs::write(at("helper"), script).unwrap();
            std::process::Command::new("chmod")
                .args(["755", &at("systemctl")])
                .status()
                .unwrap();
            Helper { dir }
        }

        fn path(&self, rest: &str) -> std::path::PathBuf {
            self.dir.path().join(rest)
        }

        fn release(&self, id: &str, unit: &str) {
            let dir = self.path(&format!("opt/shop/releases/{id}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("shop.service"), unit).unwrap();
        }

        /// Exit code and stderr.
        fn run(&self, args: &[&str]) -> (i32, String) {
            let out = std::process::Command::new("sh")
                .arg(self.path("helper"))
                .args(args)
                .output()
                .unwrap();
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }

        fn installed(&self) -> Option<String> {
            std::fs::read_to_string(self.path("units/shop.service")).ok()
        }

        fn log(&self) -> String {
            std::fs::read_to_string(self.path("log")).unwrap_or_default()
        }
    }

    #[test]
    fn the_root_helper_installs_the_unit_it_renders_itself() {
        let helper = Helper::new();
        let unit = filled(HEADER, "240s", "90s");
        helper.release("20260101-120000-ab12", &unit);
        assert_eq!(
            helper.run(&["install-unit", "20260101-120000-ab12"]),
            (0, String::new())
        );
        assert_eq!(helper.installed().as_deref(), Some(unit.as_str()));
        assert_eq!(
            helper.log(),
            "show -p FragmentPath --value shop.service\ndaemon-reload\n"
        );
        for command in ["enable", "start", "reload", "daemon-reload"] {
            assert_eq!(helper.run(&[command]).0, 0, "{command}");
        }
        assert!(helper.log().ends_with(
            "enable shop.service\nstart shop.service\nreload shop.service\ndaemon-reload\n"
        ));
    }

    #[test]
    fn the_root_helper_refuses_other_arguments() {
        let helper = Helper::new();
        helper.release("r1", &filled(HEADER, "240s", "90s"));
        std::fs::create_dir_all(helper.path("opt/shop/x")).unwrap();
        std::fs::write(
            helper.path("opt/shop/x/shop.service"),
            filled(HEADER, "240s", "90s"),
        )
        .unwrap();
        std::os::unix::fs::symlink(
            helper.path("opt/shop/x"),
            helper.path("opt/shop/releases/link"),
        )
        .unwrap();
        for args in [
            &["install-unit"][..],
            &["install-unit", ""],
            &["install-unit", "../x"],
            &["install-unit", "r1/../../x"],
            &["install-unit", "r1/.."],
            &["install-unit", ".r1"],
            &["install-unit", "-m"],
            &["install-unit", "r1 -m 4755"],
            &["install-unit", "r1..x"],
            &["install-unit", "r1", "/tmp/evil"],
            &["install-unit", "link"],
            &["install-unit", "missing"],
            &["enable", "other.service"],
            &["start", "--now"],
            &["reload", "shop.service"],
            &["stop"],
            &["restart"],
            &["install-binary"],
            &["sh"],
            &[],
        ] {
            let (code, err) = helper.run(args);
            assert_eq!(code, 2, "{args:?}: {err}");
            assert!(err.starts_with("stack-root-shop: "), "{args:?}: {err}");
        }
        assert_eq!(helper.installed(), None);
        assert_eq!(helper.log(), "", "systemctl ran");
    }

    #[test]
    fn the_root_helper_installs_no_unit_but_its_own() {
        let helper = Helper::new();
        let tampered = [
            filled(HEADER, "240s", "90s").replace("User=deploy\n", ""),
            filled(HEADER, "240s", "90s").replace("/opt/shop/bin/stack", "/tmp/evil"),
            filled(HEADER, "240s", "90s") + "ExecStartPre=/tmp/evil\n",
            filled(HEADER, "240s\nUser=root", "90s"),
            filled(HEADER, "240s", "90s\nTimeoutStopSec=90s"),
            filled(HEADER, "9s; x", "90s"),
            filled(HEADER, "", "90s"),
            filled(HEADER, "1234567890s", "90s"),
            filled(&format!("{HEADER} \\"), "240s", "90s"),
            filled(&format!("{HEADER}\u{1b}"), "240s", "90s"),
            filled("[Service]", "240s", "90s"),
            filled(HEADER, "240s", "90s") + &format!("# {}\n", "x".repeat(70_000)),
        ];
        for (i, unit) in tampered.iter().enumerate() {
            helper.release(&format!("r{i}"), unit);
            let (code, err) = helper.run(&["install-unit", &format!("r{i}")]);
            assert_eq!(code, 2, "{unit}: {err}");
            assert_eq!(helper.installed(), None, "{unit}");
        }
        assert!(!helper.log().contains("daemon-reload"));
        let tmp: Vec<_> = std::fs::read_dir(helper.path("units")).unwrap().collect();
        assert!(tmp.is_empty(), "left {tmp:?}");
    }

    #[test]
    fn the_root_helper_leaves_a_unit_stack_did_not_write() {
        let helper = Helper::new();
        helper.release("r1", &filled(HEADER, "240s", "90s"));
        std::fs::write(helper.path("units/shop.service"), "# mine\n").unwrap();
        for args in [
            &["install-unit", "r1"][..],
            &["enable"],
            &["start"],
            &["reload"],
        ] {
            let (code, err) = helper.run(args);
            assert_eq!(code, 2, "{args:?}: {err}");
        }
        assert_eq!(helper.installed().as_deref(), Some("# mine\n"));
        assert_eq!(helper.log(), "");
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
