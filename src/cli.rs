//! The command line, as clap derive types. Doc comments are the `--help` text.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

mod preview;
mod values;
pub use preview::{PreviewCommand, PreviewDownArgs, PreviewOnArgs, PreviewUpArgs};
use values::{duration, port, release_id};
pub use values::{PresetArg, ProxyArg};

/// Render, run and deploy a single-VM Docker Compose stack from one project file.
/// `stack --version`: the package version and the commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("STACK_COMMIT"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "stack",
    version = VERSION,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct Global {
    /// The project directory (holding `stack.env`)
    #[arg(
        long,
        short = 'C',
        global = true,
        value_name = "DIR",
        default_value = "."
    )]
    pub project_dir: PathBuf,
    /// The environment: dev, staging, prod, or any folder under `environments/`
    #[arg(
        long,
        short = 'e',
        global = true,
        env = "STACK_ENV",
        value_name = "NAME"
    )]
    pub env: Option<String>,
    /// Override a key, as if written last (repeatable)
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Machine-readable output on stdout
    #[arg(long, global = true)]
    pub json: bool,
    /// Only errors on stderr
    #[arg(long, short = 'q', global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// More detail on stderr
    #[arg(long, short = 'v', global = true)]
    pub verbose: bool,
    /// No colour (also when `NO_COLOR` is set)
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Answer yes to every question; never prompt
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,
    /// Keep `FRONTEND` services in prod
    #[arg(long, global = true)]
    pub include_frontends: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scaffold a project: stack.env, environments/{staging,prod}/, .gitignore
    Init(InitArgs),
    /// Render the bundle: docker-compose.yml, proxy config, systemd unit, secrets
    Build(BuildArgs),
    /// Show the resolved configuration (secrets redacted)
    Config(ConfigArgs),
    /// Generate or check secrets
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Production audit of an environment; exits 1 when it fails
    Check(EnvArg),
    /// Converge the local engine to the bundle and wait until every service is ready
    Start(StartArgs),
    /// Stop containers, keeping them
    Stop(StopArgs),
    /// Restart containers
    Restart(RestartArgs),
    /// Remove the project's containers and network (volumes only with --volumes)
    Down(DownArgs),
    /// Per service: containers, state, health, ports, routes, image, uptime
    Status(OnArg),
    /// Exit 1 when any service is not healthy
    Health(OnArg),
    /// Logs of services, prefixed by service
    Logs(LogsArgs),
    /// Run a command in a running container of a service (a TTY when stdin is a terminal);
    /// exits with its exit code
    Exec(ExecArgs),
    /// Run a command in a one-off container of a service (its image, configuration,
    /// secrets and network), removed afterwards; exits with its exit code
    Run(RunArgs),
    /// Ship a release over SSH and converge the server's engine
    Deploy(DeployArgs),
    /// Preview environments: an isolated copy of the project per branch or pull request,
    /// on the server of an environment, behind its proxy
    #[command(subcommand)]
    Preview(PreviewCommand),
    /// List the releases on the server, the current one marked
    Releases(EnvArg),
    /// Switch the server back to a release (default: the one before current)
    Rollback(RollbackArgs),
    /// The deploy lock
    #[command(subcommand)]
    Lock(LockCommand),
    /// The server's audit log: deploys, rollbacks, lock releases
    Audit(EnvArg),
    /// Maintenance mode: the proxy answers every route with 503, Retry-After and a page,
    /// but to allowed addresses; kept across deploys, restarts and reboots until `off`
    Maintenance(MaintenanceArgs),
    /// Prepare servers: Docker, the deploy user, its key, SERVER_PATH, this binary
    #[command(subcommand)]
    Server(ServerCommand),
    /// Database backups (BACKUP preset): run, list, verify, restore; locally or `--on ENV`
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Scheduled jobs (`SERVICE_<NAME>_SCHEDULE`): list them with their next and last runs,
    /// or run one now (`stack jobs run NAME`)
    Jobs(JobsArgs),
    /// What the systemd unit runs: bring a bundle up, then restart containers that turn unhealthy
    Supervise(SuperviseArgs),
    /// Print shell completions
    Completions(CompletionsArgs),
    /// Check this machine, the server and DNS: one line per check with the fix; exits 1
    /// when a check fails
    Doctor(DoctorArgs),
    /// Write the man pages (from this command-line definition) to DIR
    #[command(name = "__man", hide = true)]
    Man(ManArgs),
    /// Write a project from a Compose file or an nself project (never replaces one)
    #[command(subcommand)]
    Import(ImportCommand),
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import a Compose file: writes `stack.env` and `environments/dev/secrets.env` (0600)
    /// and lists, by service and key, what is not carried and why.
    ///
    /// Interpolation (`${VAR:-default}`) is kept; the `.env` beside the file supplies
    /// values (secret-looking names, `*PASSWORD*`, `*SECRET*`, `*TOKEN*`, `*_KEY`, go to
    /// the secrets file, as do file-based secrets). A `Caddyfile` beside the file that no
    /// service mounts gives `ROUTE`s.
    Compose(ImportComposeArgs),
    /// Import an nself project (`.env.dev`, `.environments/<env>/`): presets, custom
    /// services, frontend routes, environments, secrets and servers.
    Nself(ImportNselfArgs),
}

#[derive(Debug, Args)]
pub struct ImportComposeArgs {
    /// The Compose file (`docker-compose.yml`, `compose.yaml`), or a folder holding one;
    /// its `*.override.*` file beside it is merged over it, as Compose does
    pub file: Option<PathBuf>,
    /// Directory to write the project to (default: the project directory)
    pub dir: Option<PathBuf>,
    /// Compose files merged in order, as `docker compose -f a.yml -f b.yml` does (then
    /// the only argument is DIR)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Import the services of this profile too (repeatable; `*` for all); services in
    /// other profiles are left out and listed, as `docker compose up` leaves them out
    #[arg(long = "profile", value_name = "NAME")]
    pub profiles: Vec<String>,
    /// Exit 2, writing nothing, when anything is not carried
    #[arg(long)]
    pub strict: bool,
    /// Route a service's published HTTP port through the proxy (`PORT` + `ROUTE`
    /// `<service>.${STACK_DOMAIN}`) instead of publishing it
    #[arg(long)]
    pub routes: bool,
    /// A Caddyfile whose `reverse_proxy` site blocks become `ROUTE`s (default: a
    /// `Caddyfile` beside the Compose file, unless a service mounts it)
    #[arg(long, value_name = "FILE")]
    pub caddyfile: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportNselfArgs {
    /// The nself project directory
    pub source: PathBuf,
    /// Directory to write the project to (default: the project directory)
    pub dir: Option<PathBuf>,
    /// Exit 2, writing nothing, when anything is not carried
    #[arg(long)]
    pub strict: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory to create the project in (default: the project directory)
    pub dir: Option<PathBuf>,
    /// Project name (default: the directory's name)
    #[arg(long)]
    pub name: Option<String>,
    /// Base domain for routes
    #[arg(long)]
    pub domain: Option<String>,
    /// Reverse proxy: caddy, nginx or none
    #[arg(long, value_enum)]
    pub proxy: Option<ProxyArg>,
    /// Image of the first service (checked as `SERVICE_<NAME>_IMAGE` is)
    #[arg(long)]
    pub image: Option<String>,
    /// Port the first service listens on (checked as `SERVICE_<NAME>_PORT` is)
    #[arg(long, value_parser = port)]
    pub port: Option<u16>,
    /// Presets to switch on, comma-separated: postgres, redis, mailpit, minio, meilisearch, monitoring, backup
    #[arg(long, value_delimiter = ',', value_enum)]
    pub presets: Option<Vec<PresetArg>>,
    /// Replace an existing stack.env
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Write the bundle here instead of `.stack/<env>/`
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Render in memory; exit 1 with a diff when the bundle on disk is stale
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub action: Option<ConfigAction>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// The final value of a key and every file:line that set it, in order
    Explain {
        /// The key, e.g. `SERVICE_API_IMAGE`
        key: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Fill missing secrets with strong random values (never overwrites one)
    Generate(EnvArg),
    /// Check that secrets are present and strong and that the file is private
    Check(EnvArg),
}

#[derive(Debug, Args)]
pub struct OnArg {
    /// Act on this environment's server (the release `current` there), through the
    /// deploy SSH connection
    #[arg(long, value_name = "ENV")]
    pub on: Option<String>,
}

/// `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

#[derive(Debug, Args)]
pub struct MaintenanceArgs {
    /// `on` or `off`
    #[arg(value_enum)]
    pub switch: Switch,
    /// Act on this environment's server (like `--on ENV`); without it, the local engine
    #[arg(value_name = "ENV")]
    pub env: Option<String>,
    /// Act on this environment's server, through the deploy SSH connection
    #[arg(long, value_name = "ENV")]
    pub on: Option<String>,
    /// The page to answer with (HTML, UTF-8, at most 1 MiB; default: a plain page)
    #[arg(long, value_name = "FILE")]
    pub page: Option<std::path::PathBuf>,
    /// Addresses that still reach the app: IPs or CIDR ranges, comma-separated
    #[arg(long, value_name = "CIDR,…", value_delimiter = ',')]
    pub allow: Vec<crate::render::maintenance::Cidr>,
    /// The Retry-After header, in seconds (1 to 86400)
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub retry_after: Option<u32>,
}

#[derive(Debug, Args)]
pub struct EnvArg {
    /// The environment (default: `--env`, `STACK_ENV`, then `dev`)
    #[arg(value_name = "ENV")]
    pub env: Option<String>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The environment whose server to check too (default: `--env`, `STACK_ENV`, then
    /// `dev`; `dev` without a server checks this machine only)
    #[arg(value_name = "ENV")]
    pub env: Option<String>,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The directory to write `stack.1` and `stack-<command>.1` to
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Services to converge (default: all)
    pub services: Vec<String>,
    /// Print the plan and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Rebuild images of `BUILD` services even when present
    #[arg(long)]
    pub build: bool,
}

#[derive(Debug, Args)]
pub struct ServicesArg {
    /// Services (default: all)
    pub services: Vec<String>,
    /// Act on a deployed bundle (a release directory) instead of the project
    #[arg(long, value_name = "DIR")]
    pub bundle: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    #[command(flatten)]
    pub services: ServicesArg,
    /// Print the plan and change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct RestartArgs {
    #[command(flatten)]
    pub services: ServicesArg,
    /// Print the plan and change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The environment to deploy (its `environments/ENV/server.env` names the server)
    pub env: String,
    /// Print what would change on the server and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Deploy prod even when `stack check prod` fails
    #[arg(long)]
    pub force: bool,
    /// Deploy from a working tree with uncommitted changes
    #[arg(long)]
    pub allow_dirty: bool,
    /// Wait this long for another deploy's lock (e.g. `5m`)
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = duration)]
    pub lock_wait: Duration,
    /// A note recorded with the lock and in the audit log
    #[arg(long, short = 'm', default_value = "")]
    pub message: String,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The environment
    pub env: String,
    /// The release to switch to (default: the one before current), as `stack releases`
    /// names it (`<env>-<YYYYMMDDTHHMMSSZ>-<8 hex digits>`)
    #[arg(value_parser = release_id)]
    pub release: Option<crate::deploy::ReleaseId>,
    /// Wait this long for another deploy's lock
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = duration)]
    pub lock_wait: Duration,
    /// Print the steps of the rollback and change nothing (no lock is taken)
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Make a fresh Debian or Ubuntu server ready for `stack deploy`, over SSH as an admin
    Setup(ServerSetupArgs),
}

#[derive(Debug, Args)]
pub struct ServerSetupArgs {
    /// The environment (its `environments/ENV/server.env` names the server)
    pub env: String,
    /// Log in as this user, root or one with passwordless sudo
    #[arg(long, value_name = "USER", default_value = "root")]
    pub admin_user: String,
    /// The public key to authorise for the deploy user (default: SERVER_SSH_KEY + `.pub`)
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Install Docker from Docker's own apt repository instead of the distribution's docker.io
    #[arg(long)]
    pub docker_repo: bool,
    /// Install stack on the server from this `.deb` (`scripts/build-deb.sh`) instead of
    /// copying the running binary
    #[arg(long, value_name = "FILE.deb")]
    pub package: Option<PathBuf>,
    /// List the steps and which are still to do; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum LockCommand {
    /// Free a lock left behind by a killed deploy
    Release(EnvArg),
}

#[derive(Debug, Args)]
pub struct SuperviseArgs {
    /// The bundle directory (a release) to run
    #[arg(long, value_name = "DIR")]
    pub bundle: PathBuf,
    /// Converge once and exit instead of watching health
    #[arg(long)]
    pub once: bool,
    /// Print the plan of one pass (what `--once` does) and change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct JobsArgs {
    #[command(subcommand)]
    pub action: Option<JobsAction>,
    /// Act on this environment's server (the release `current` there): runs the server's
    /// stack over the deploy SSH connection
    #[arg(long, value_name = "ENV", global = true)]
    pub on: Option<String>,
    /// A deployed bundle to act on (what `--on` runs on the server)
    #[arg(
        long,
        value_name = "DIR",
        global = true,
        hide = true,
        conflicts_with = "on"
    )]
    pub bundle: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum JobsAction {
    /// Run a job now, in a one-off container like a scheduled run (its overlap policy and
    /// timeout hold); shows its output and exits with its exit code
    Run(JobRunArgs),
}

#[derive(Debug, Args)]
pub struct JobRunArgs {
    /// The job (a service with `SCHEDULE`)
    pub name: String,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Also remove the project's named volumes (their data is lost)
    #[arg(long)]
    pub volumes: bool,
    /// Print the plan and change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Services (default: all)
    pub services: Vec<String>,
    /// Keep following new lines
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Lines from the end of each log
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
    /// Only lines from this long ago on (e.g. `10m`, `2h`)
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub since: Option<Duration>,
    /// Act on this environment's server (the release `current` there), through the
    /// deploy SSH connection
    #[arg(long, value_name = "ENV")]
    pub on: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The service
    pub service: String,
    /// Which replica (its container number; default: the first running one)
    #[arg(long, value_name = "N")]
    pub replica: Option<u32>,
    /// Act on this environment's server, through the deploy SSH connection
    #[arg(long, value_name = "ENV")]
    pub on: Option<String>,
    /// The command and its arguments, after `--`
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The service
    pub service: String,
    /// Act on this environment's server (the release `current` there), through the
    /// deploy SSH connection
    #[arg(long, value_name = "ENV")]
    pub on: Option<String>,
    /// The command and its arguments, after `--`
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// A dump now: pg_dump (custom format) and its manifest, retention, metrics; then an
    /// archive of each volume of `BACKUP_VOLUMES`; with an S3 target, the off-site copy too
    Run(BackupOn),
    /// The dumps under `BACKUP_TARGET`: time, size, age, whether verified
    List(BackupOn),
    /// Restore a dump into a throwaway Postgres of the same image and compare it with its
    /// manifest; exit 1 on any difference
    Verify(BackupVerifyArgs),
    /// Restore a dump into the live database: a safety dump first, the services that
    /// depend on postgres stopped, then started again and waited for (asks unless --yes);
    /// with `--volume NAME`, a volume archive into that volume the same way
    Restore(BackupRestoreArgs),
}

#[derive(Debug, Args)]
pub struct BackupOn {
    /// On the server of this environment (its current release), over the deploy SSH
    /// connection, instead of the local engine
    #[arg(long, value_name = "ENV")]
    pub on: Option<String>,
}

#[derive(Debug, Args)]
pub struct BackupVerifyArgs {
    /// The dump, as `stack backup list` names it (default: the newest)
    pub dump: Option<String>,
    #[command(flatten)]
    pub on: BackupOn,
}

#[derive(Debug, Args)]
pub struct BackupRestoreArgs {
    /// The dump, or with `--volume` the archive (default: the volume's newest), as `stack
    /// backup list` names it
    #[arg(required_unless_present = "volume")]
    pub dump: Option<String>,
    /// Restore this volume of `BACKUP_VOLUMES` (its users are stopped, then started again)
    #[arg(long, value_name = "NAME")]
    pub volume: Option<String>,
    #[command(flatten)]
    pub on: BackupOn,
}
