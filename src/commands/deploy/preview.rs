//! `stack preview up|list|down|expire`: a preview is a deploy of the current project
//! under the Compose project `<project>-<name>`, with `SERVER_PATH/previews/<name>` as its
//! own `SERVER_PATH` (releases, lock, audit), its own networks, volumes and secrets, and
//! its hosts under `<name>.<STACK_PREVIEW_DOMAIN>` routed by the environment's one proxy.

use serde_json::json;
use sha2::{Digest, Sha256};

use super::super::{server_of, server_placement, unleashed_server_engine, Context};
use crate::cli::{DeployArgs, PreviewCommand, PreviewDownArgs, PreviewOnArgs, PreviewUpArgs};
use crate::config::preview::{normalise_name, PreviewOf, Seed};
use crate::config::{Loaded, ProxyKind, Target};
use crate::deploy::preview::{now_secs, preview_path, Found, Host, Route};
use crate::deploy::Remote;
use crate::error::{Diagnostic, Error, Result};
use crate::model::preview::router;

pub fn preview(context: &Context, command: &PreviewCommand) -> Result<()> {
    match command {
        PreviewCommand::Up(args) => up(context, args),
        PreviewCommand::List(args) => list(context, args),
        PreviewCommand::Down(args) => down(context, args),
        PreviewCommand::Expire(args) => expire(context, args),
    }
}

/// The environment that hosts previews: its configuration and the base of their hosts.
fn host(context: &Context, env: &str) -> Result<(Loaded, String)> {
    let loaded = context.load(env)?;
    let Some(domain) = loaded.config.previews.domain.clone() else {
        return Err(Error::invalid(
            Diagnostic::new(format!("environment `{env}` hosts no previews")).hint(format!(
                "set `STACK_PREVIEW_DOMAIN=*.preview.example.com` for `{env}` and deploy it once"
            )),
        ));
    };
    if loaded.config.target == Target::Swarm {
        return Err(Error::invalid(
            Diagnostic::new(format!(
                "`{env}` runs on a swarm (`STACK_TARGET=swarm`), and previews run only beside a compose environment"
            ))
            .hint("host previews on a compose environment (e.g. a staging server with `STACK_TARGET=compose`)"),
        ));
    }
    if !matches!(
        loaded.config.proxy.kind,
        ProxyKind::Caddy | ProxyKind::Nginx
    ) {
        return Err(Error::invalid(
            Diagnostic::new(format!(
                "previews route through the environment's proxy, and `{env}` runs none"
            ))
            .hint("set `STACK_PROXY=caddy` or `STACK_PROXY=nginx`"),
        ));
    }
    Ok((loaded, domain))
}

/// The environment as the removal of its previews needs it.
fn host_of(host: &Loaded, path: &str) -> Host {
    Host {
        project: host.config.project.clone(),
        path: path.to_string(),
        kind: host.config.proxy.kind,
    }
}

/// The name as a DNS label that fits `<name>.<domain>` and `<project>-<name>`.
fn name_of(raw: &str, project: &str, domain: &str) -> Result<String> {
    let room = 63usize
        .min(253usize.saturating_sub(domain.len() + 1))
        .min(63usize.saturating_sub(project.len() + 1 + "-proxy-1".len()));
    normalise_name(raw, room).map_err(Error::invalid)
}

fn up(context: &Context, args: &PreviewUpArgs) -> Result<()> {
    let on = args.on.clone().unwrap_or_else(|| args.from.clone());
    let (host, domain) = host(context, &on)?;
    let host_server = server_of(&host)?;
    let project = host.config.project.clone();
    let name = name_of(&args.name, &project, &domain)?;
    let source = context.load_with_secrets(&args.from)?;
    let preview_context = Context::new(crate::cli::Global {
        sets: preview_sets(context, &source, (&host, &host_server), &name, &domain),
        ..context.global.clone()
    });
    let mut loaded = preview_context.load_with_secrets(&args.from)?;
    loaded.config.preview = Some(PreviewOf {
        name: name.clone(),
        project: project.clone(),
    });
    let (hosts, outside) = crate::render::preview::hosts(&loaded.config);
    refuse_collisions(&host, &hosts)?;
    for stray in &outside {
        context.printer.warn(&Diagnostic::new(format!(
            "the preview routes `{stray}`, which is not under `{name}.{domain}`; the environment's proxy does not route it"
        )));
    }
    if hosts.is_empty() {
        return Err(Error::invalid(Diagnostic::new(format!(
            "the preview `{name}` would route nothing under `{name}.{domain}`"
        ))
        .hint("give a service a route on `${STACK_DOMAIN}` (e.g. `SERVICE_WEB_ROUTE=${STACK_DOMAIN}`)")));
    }
    let remote = Remote::connect(&host_server, &on)?;
    let (existed, seeding) = claim(context, (&remote, &host), &loaded, &name)?;
    let route = route_of(
        &host,
        &host_server.path,
        &name,
        &hosts,
        &loaded.config.project,
    );
    let deploy = DeployArgs {
        env: args.from.clone(),
        dry_run: false,
        force: false,
        allow_dirty: args.allow_dirty,
        lock_wait: args.lock_wait,
        message: args.message.clone(),
    };
    if let Err(error) = super::deploy_loaded(&preview_context, &deploy, &loaded, Some(&route)) {
        if seeding {
            discard(context, &remote, &host, &name)?;
            context.printer.status(format!(
                "the preview `{name}` failed while its database was restored from `{on}`'s dump \
                 (see the error below), so it was removed; `{on}` is untouched"
            ));
            return Err(error);
        }
        let verb = if existed { "update of" } else { "new" };
        context.printer.status(format!(
            "the {verb} preview `{name}` failed; `{on}` is untouched; remove it with `stack preview down {name} --on {on}`"
        ));
        return Err(error);
    }
    seed(context, &loaded, &remote, &name)?;
    let address = format!("{}://{}", scheme(&host), hosts[0]);
    if context.global.json {
        context.printer.json(&json!({"preview": name, "env": on, "project": loaded.config.project, "hosts": hosts, "address": address, "created": !existed}));
    } else {
        context.printer.out(format!("{address}\n"));
    }
    context
        .printer
        .status(format!("preview `{name}` is up at {address}"));
    Ok(())
}

/// The preview's route through the environment `host`'s proxy (at `env_path`).
fn route_of(host: &Loaded, env_path: &str, name: &str, hosts: &[String], preview: &str) -> Route {
    let project = &host.config.project;
    Route {
        name: name.to_string(),
        env_path: env_path.to_string(),
        sites: crate::render::preview::sites(
            host.config.proxy.kind,
            host.config.tls,
            name,
            hosts,
            &router(preview),
        ),
        hosts: hosts.to_vec(),
        proxy: crate::model::container_name(project, crate::model::PROXY_SERVICE, 1),
        kind: host.config.proxy.kind,
        acme: host.config.tls == crate::config::Tls::Auto,
        certbot: crate::model::wants_certbot(&host.config)
            .then(|| crate::model::container_name(project, crate::model::CERTBOT_SERVICE, 1)),
    }
}

/// Remove a new preview whose first deploy failed while it was seeded from a backup: a
/// database half restored is no preview to keep (`up` again starts from a new seed).
fn discard(context: &Context, remote: &Remote, host: &Loaded, name: &str) -> Result<()> {
    let runtime = super::super::runtime()?;
    let engine = runtime.block_on(unleashed_server_engine(remote))?;
    let site = host_of(host, &remote.server.path);
    let removed = runtime.block_on(crate::deploy::preview::remove(
        &remote.session,
        &engine,
        &site,
        name,
    ))?;
    context.printer.status(format!(
        "removed the failed preview `{name}`: {removed} container(s), its networks, volumes, files and route"
    ));
    Ok(())
}

/// Make the preview's folder (refused beyond `STACK_PREVIEW_MAX`), once the environment
/// is ready for it and, for `STACK_PREVIEW_SEED=backup`, its dump is found (none: nothing
/// is created); then fill its seed volume. Whether it existed, and whether it is seeded
/// from a dump now. The dump is the hosting environment's (`--on`, which is `--from`
/// unless given): the one on this server.
fn claim(
    context: &Context,
    (remote, host): (&Remote, &Loaded),
    loaded: &Loaded,
    name: &str,
) -> Result<(bool, bool)> {
    let runtime = super::super::runtime()?;
    let engine = runtime.block_on(unleashed_server_engine(remote))?;
    let on = &host.config.env;
    runtime.block_on(shared_network_exists(&engine, &host.config.project, on))?;
    // Once: an update of a seeded preview needs no dump (its database is its own now).
    let project = &loaded.config.project;
    let seed_source = match loaded.config.previews.seed {
        Seed::Backup if !runtime.block_on(super::seed::seeded(&engine, project))? => {
            Some(runtime.block_on(super::seed::newest_dump(
                context,
                (remote, &remote.server),
                &engine,
                on,
            ))?)
        }
        _ => None,
    };
    let existed = remote.claim_preview(name, host.config.previews.max)?;
    if let Some(source) = &seed_source {
        runtime.block_on(super::seed::fill(context, &engine, source, project))?;
    }
    Ok((existed, seed_source.is_some()))
}

/// What a preview sets over its source environment: its project, path, domain, server,
/// TLS (it ends at the environment's proxy) and its own secrets.
fn preview_sets(
    context: &Context,
    source: &Loaded,
    (host, server): (&Loaded, &crate::config::Server),
    name: &str,
    domain: &str,
) -> Vec<String> {
    let mut sets = context.global.sets.clone();
    sets.extend([
        format!("STACK_PROJECT={}-{name}", host.config.project),
        format!("STACK_DOMAIN={name}.{domain}"),
        "STACK_TLS=off".to_string(),
        format!("SERVER_HOST={}", server.host),
        format!("SERVER_USER={}", server.user),
        format!("SERVER_PORT={}", server.port),
        format!("SERVER_PATH={}", preview_path(&server.path, name)),
    ]);
    if let Some(key) = &server.ssh_key {
        sets.push(format!("SERVER_SSH_KEY={key}"));
    }
    let shared = &host.config.previews.shared_secrets;
    for secret in &source.config.secrets {
        if shared.contains(&secret.name) {
            continue;
        }
        if let Some(setting) = source.resolved.settings.get(&secret.name) {
            sets.push(format!(
                "{}={}",
                secret.name,
                derive_secret(&setting.value, name)
            ));
        }
    }
    sets
}

/// A preview's own value of a secret: stable for the name, never the environment's, and
/// the environment's cannot be read back from it.
fn derive_secret(value: &str, name: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"stack-preview\0");
    hasher.update(name.as_bytes());
    hasher.update([0]);
    hasher.update(value.as_bytes());
    let hex: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    hex[..value.len().clamp(16, 64)].to_string()
}

/// A preview host that the environment routes itself is refused.
fn refuse_collisions(host: &Loaded, hosts: &[String]) -> Result<()> {
    let taken: Vec<&str> = host
        .config
        .services
        .iter()
        .flat_map(|s| s.routes.iter())
        .map(|r| r.host.as_str())
        .collect();
    match hosts.iter().find(|h| taken.contains(&h.as_str())) {
        Some(clash) => Err(Error::invalid(
            Diagnostic::new(format!(
                "the preview's host `{clash}` is a host of `{}` itself",
                host.config.env
            ))
            .hint("pick another preview name, or another `STACK_PREVIEW_DOMAIN`"),
        )),
        None => Ok(()),
    }
}

/// The network the environment's proxy shares with previews exists (it was deployed
/// with `STACK_PREVIEW_DOMAIN`).
async fn shared_network_exists(
    engine: &crate::engine::Engine,
    project: &str,
    env: &str,
) -> Result<()> {
    let network = crate::config::preview::shared_network(project);
    if engine.network_exists(&network).await? {
        return Ok(());
    }
    Err(Error::invalid(
        Diagnostic::new(format!(
            "`{env}` is not ready for previews: its proxy has no network `{network}`"
        ))
        .hint(format!(
            "deploy `{env}` once with `STACK_PREVIEW_DOMAIN` set: `stack deploy {env}`"
        )),
    ))
}

/// `STACK_PREVIEW_SEED=command`: the seed command, once per preview, in a one-off
/// container of the preview's own release (its own volumes and database).
fn seed(context: &Context, loaded: &Loaded, host_remote: &Remote, name: &str) -> Result<()> {
    let previews = &loaded.config.previews;
    let (crate::config::preview::Seed::Command, Some((service, command))) =
        (previews.seed, &previews.seed_command)
    else {
        return Ok(());
    };
    if !host_remote.mark_seeded(name)? {
        return Ok(());
    }
    let server = server_of(loaded)?;
    let remote = Remote::connect(&server, &loaded.config.env)?;
    let current = remote
        .current()?
        .ok_or_else(|| Error::outside("the preview has no current release to seed"))?;
    let (desired, secrets) = remote.desired(current.trim_start_matches("releases/"))?;
    let Some(target) = desired.service(service).cloned() else {
        return Err(Error::invalid(
            Diagnostic::new(format!(
                "`STACK_PREVIEW_SEED_COMMAND` names `{service}`, which the preview does not run"
            ))
            .hint("name one of the project's services"),
        ));
    };
    context
        .printer
        .status(format!("seeding preview `{name}`: {service}: {command}"));
    super::super::runtime()?.block_on(async {
        let engine = unleashed_server_engine(&remote).await?;
        let argv = vec!["sh".to_string(), "-c".to_string(), command.clone()];
        let placement = server_placement(&server);
        let ran = engine
            .run_oneoff(
                &desired,
                &target,
                (&argv, "seed"),
                (&placement, &secrets),
                (std::time::Duration::from_secs(1800), |line: &str| {
                    context.printer.status(format!("  {line}"))
                }),
            )
            .await?;
        match ran.ended {
            crate::engine::oneoff::Ended::Exited(0) => Ok(()),
            ended => Err(Error::No(format!(
                "the seed command of preview `{name}` failed ({ended:?}); the preview runs unseeded\n{}",
                ran.last_lines.join("\n")
            ))),
        }
    })
}

fn list(context: &Context, args: &PreviewOnArgs) -> Result<()> {
    let (host, domain) = host(context, &args.on)?;
    let remote = Remote::connect(&server_of(&host)?, &args.on)?;
    let entries = remote.previews()?;
    let now = now_secs();
    if context.global.json {
        let rows: Vec<_> = entries
            .iter()
            .map(|e| json!({"name": e.name, "created": e.created, "release": e.release, "idle_seconds": e.deployed_at.map(|t| now.saturating_sub(t)), "address": format!("{}://{}.{domain}", scheme(&host), e.name), "disk_kb": e.disk_kb}))
            .collect();
        context
            .printer
            .json(&json!({"env": args.on, "previews": rows}));
        return Ok(());
    }
    let mut out = String::from("NAME\tCREATED\tLAST DEPLOY\tADDRESS\tDISK\n");
    for entry in &entries {
        let last = match entry.deployed_at {
            Some(at) => format!("{} ago", human(now.saturating_sub(at))),
            None => "never (failed)".into(),
        };
        out.push_str(&format!(
            "{}\t{}\t{last}\t{}://{}.{domain}\t{} MB\n",
            entry.name,
            entry.created,
            scheme(&host),
            entry.name,
            entry.disk_kb.div_ceil(1024)
        ));
    }
    context.printer.out(out);
    Ok(())
}

fn down(context: &Context, args: &PreviewDownArgs) -> Result<()> {
    let (host, domain) = host(context, &args.on)?;
    let name = name_of(&args.name, &host.config.project, &domain)?;
    let remote = Remote::connect(&server_of(&host)?, &args.on)?;
    match remote.find_preview(&name)? {
        Found::Free => {}
        Found::None => {
            return Err(Error::invalid(
                Diagnostic::new(format!("`{name}` is not a preview on `{}`", args.on))
                    .hint(format!("see `stack preview list --on {}`", args.on)),
            ))
        }
        Found::Held(holder) => {
            return Err(Error::No(format!(
                "a deploy of preview `{name}` is running ({holder}), so it was not removed\nhint: run `stack preview down {name}` again when it ends"
            )))
        }
    }
    let runtime = super::super::runtime()?;
    let engine = runtime.block_on(unleashed_server_engine(&remote))?;
    let host = host_of(&host, &remote.server.path);
    let removed = runtime.block_on(crate::deploy::preview::remove(
        &remote.session,
        &engine,
        &host,
        &name,
    ))?;
    if context.global.json {
        context.printer.json(
            &json!({"preview": name, "env": args.on, "removed": true, "containers": removed}),
        );
    }
    context.printer.status(format!(
        "removed preview `{name}` from `{}`: {removed} container(s), its networks, volumes, secrets, files and route",
        args.on
    ));
    Ok(())
}

fn expire(context: &Context, args: &PreviewOnArgs) -> Result<()> {
    let (host, _) = host(context, &args.on)?;
    let remote = Remote::connect(&server_of(&host)?, &args.on)?;
    let ttl = host.config.previews.ttl;
    let runtime = super::super::runtime()?;
    let engine = runtime.block_on(unleashed_server_engine(&remote))?;
    let site = host_of(&host, &remote.server.path);
    let expired = runtime.block_on(crate::deploy::preview::expire(
        &remote.session,
        &engine,
        &site,
        (ttl, now_secs()),
        |name| {
            context.printer.status(format!(
                "removed preview `{name}`: not deployed for over {}",
                human(ttl.as_secs())
            ))
        },
    ))?;
    if context.global.json {
        context
            .printer
            .json(&json!({"env": args.on, "expired": expired}));
    }
    Ok(())
}

/// The warning for a preview's hosts that have no certificate after its deploy (never a
/// failure: the preview runs, and the proxy or certbot keeps trying on its schedule).
pub(super) fn missing_certificates(route: &Route, missing: &[String]) -> Option<Diagnostic> {
    if missing.is_empty() {
        return None;
    }
    let hosts: Vec<String> = missing.iter().map(|h| format!("`{h}`")).collect();
    let retry = match route.certbot {
        Some(_) => "certbot tries again at its next round (`STACK_CERTBOT_INTERVAL`)",
        None => "Caddy tries again with its own backoff",
    };
    Some(
        Diagnostic::new(format!(
            "no certificate yet for the preview's {}: the environment's proxy got none within {} s",
            hosts.join(", "),
            crate::engine::certificates::wait().as_secs()
        ))
        .hint(format!(
            "the preview runs and HTTPS to these hosts fails until one arrives; {retry}. \
             Check that the preview domain's DNS points at the server"
        )),
    )
}

/// `http` when the environment's proxy serves plain HTTP (`STACK_TLS=off`), else `https`.
fn scheme(host: &Loaded) -> &'static str {
    match host.config.tls {
        crate::config::Tls::Off => "http",
        _ => "https",
    }
}

/// `3d 4h`, `2h 5m`, `40s`.
fn human(secs: u64) -> String {
    match secs {
        s if s >= 86_400 => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
        s if s >= 3600 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_secrets_are_the_previews_own() {
        let a = derive_secret("hunter2-hunter2-hunter2", "pr-1");
        assert_eq!(a, derive_secret("hunter2-hunter2-hunter2", "pr-1"));
        assert_ne!(a, derive_secret("hunter2-hunter2-hunter2", "pr-2"));
        assert_eq!(a.len(), 23);
        assert!(!a.contains("hunter2"));
    }

    #[test]
    fn names_fit_the_project_and_domain() {
        assert_eq!(name_of("PR/42", "shop", "p.example.com").unwrap(), "pr-42");
        assert!(name_of(&"x".repeat(60), "shop", "p.example.com").is_err());
    }
}
