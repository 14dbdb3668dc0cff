//! `stack maintenance on|off [ENV]`: the proxy answers every route with 503, Retry-After
//! and a page, but to allowed addresses. The proxy's configuration always holds the
//! switch (a file checked on every request); this command writes the page, the allowed
//! addresses and the switch into the maintenance folder (state outside the release, so a
//! deploy, a proxy restart and a reboot keep it), and reloads the proxy gracefully when
//! the allowed addresses change. Nothing is restarted: no request fails.

use std::io::Read;
use std::path::Path;

use serde_json::json;

use super::target::Target;
use super::{runtime, Context, MaintenanceDir};
use crate::cli::{MaintenanceArgs, Switch};
use crate::engine::Engine;
use crate::error::{Diagnostic, Error, Result};
use crate::model::{Desired, PROXY_SERVICE};
use crate::render::maintenance::{
    proxy_files, State, DEFAULT_PAGE, DEFAULT_RETRY_AFTER, MAX_PAGE_BYTES, PAGE_FILE, SWITCH_FILE,
};

pub fn run(context: &Context, args: &MaintenanceArgs) -> Result<()> {
    let on = server_env(args)?;
    // Every argument is checked before anything is touched: a bad page changes nothing.
    let page = match (args.switch, &args.page) {
        (Switch::On, Some(path)) => Some(read_page(path)?),
        (Switch::On, None) => Some(DEFAULT_PAGE.as_bytes().to_vec()),
        (Switch::Off, _) => {
            if args.page.is_some() || !args.allow.is_empty() || args.retry_after.is_some() {
                return Err(Error::invalid(
                    Diagnostic::new("`--page`, `--allow` and `--retry-after` go with `on`")
                        .hint("run `stack maintenance off` alone"),
                ));
            }
            None
        }
    };
    runtime()?.block_on(async {
        let target = Target::of(context, &on).await?;
        let dir = MaintenanceDir::of(&target);
        if target.desired.service(PROXY_SERVICE).is_none() {
            return Err(Error::invalid(
                Diagnostic::new(format!(
                    "`{}` has no proxy: no service has a route, so there is nothing to put in maintenance",
                    target.desired.project
                ))
                .hint("give a service a `ROUTE` (or `DOMAIN`) so the proxy serves it"),
            ));
        }
        match page {
            Some(page) => switch_on(context, args, (&target, &dir), &page).await,
            None => switch_off(context, &dir),
        }
    })
}

/// The server named by `ENV` or `--on ENV` (they must agree); `None` for the local engine.
fn server_env(args: &MaintenanceArgs) -> Result<Option<String>> {
    match (&args.env, &args.on) {
        (Some(env), Some(on)) if env != on => Err(Error::invalid(
            Diagnostic::new(format!("two environments: `{env}` and `--on {on}`"))
                .hint("name the server's environment once"),
        )),
        (Some(env), _) => Ok(Some(env.clone())),
        (None, on) => Ok(on.clone()),
    }
}

/// `--page FILE`: a regular file (a link to one is fine) of UTF-8 text, at most 1 MiB.
fn read_page(path: &Path) -> Result<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    let bad = |why: String, hint: &str| {
        Error::invalid(
            Diagnostic::new(format!(
                "cannot use `{}` as the maintenance page: {why}",
                path.display()
            ))
            .hint(hint),
        )
    };
    let default = "give `--page` an HTML file, or leave it out for the default page";
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(bad("it does not exist".into(), default))
        }
        Err(e) => return Err(bad(format!("{e}"), default)),
    };
    if meta.is_dir() {
        return Err(bad("it is a directory, not a file".into(), default));
    }
    if !meta.is_file() {
        return Err(bad("it is not a regular file".into(), default));
    }
    let too_big = |size: u64| {
        bad(
            format!("it is {size} bytes; a page may be at most {MAX_PAGE_BYTES} (1 MiB)"),
            "link images and styles from the page instead of inlining them",
        )
    };
    if meta.len() > MAX_PAGE_BYTES {
        return Err(too_big(meta.len()));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| bad(format!("{e}"), default))?;
    let mut bytes = Vec::new();
    file.take(MAX_PAGE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| bad(format!("{e}"), default))?;
    if bytes.len() as u64 > MAX_PAGE_BYTES {
        return Err(too_big(bytes.len() as u64));
    }
    if bytes.is_empty() {
        return Err(bad("it is empty".into(), default));
    }
    if std::str::from_utf8(&bytes).is_err() {
        return Err(bad(
            "it is not UTF-8 text".into(),
            "save the page as UTF-8 HTML",
        ));
    }
    Ok(bytes)
}

async fn switch_on(
    context: &Context,
    args: &MaintenanceArgs,
    (target, dir): (&Target, &MaintenanceDir<'_>),
    page: &[u8],
) -> Result<()> {
    let retry_after = args.retry_after.unwrap_or(DEFAULT_RETRY_AFTER);
    // The snippets first: a proxy that refuses them is put back as it was, and the
    // switch is not turned on.
    let mut previous = Vec::new();
    for (name, contents) in proxy_files(&args.allow, retry_after) {
        let old = dir.read(name)?;
        if old.as_deref() != Some(contents.as_bytes()) {
            dir.write(name, contents.as_bytes())?;
            previous.push((name, old));
        }
    }
    let reloaded = if previous.is_empty() {
        false
    } else if let Err(e) = reload_proxy(&target.engine, &target.desired).await {
        for (name, old) in &previous {
            let _ = match old {
                Some(bytes) => dir.write(name, bytes),
                None => dir.remove(name),
            };
        }
        return Err(e);
    } else {
        true
    };
    dir.write(PAGE_FILE, page)?;
    let state = State {
        since: crate::deploy::timestamp(),
        allow: args.allow.iter().map(|c| c.to_string()).collect(),
        retry_after,
    };
    let text = serde_json::to_vec_pretty(&state)
        .map_err(|e| Error::outside(format!("cannot serialise the maintenance state: {e}")))?;
    dir.write(SWITCH_FILE, &text)?;
    if context.global.json {
        context.printer.json(&json!({
            "project": target.desired.project,
            "maintenance": true,
            "since": state.since,
            "allow": state.allow,
            "retry_after": retry_after,
            "reloaded": reloaded,
            "dir": dir.display(),
        }));
    }
    let allowed = if state.allow.is_empty() {
        String::new()
    } else {
        format!(" but to {}", state.allow.join(", "))
    };
    context.printer.status(format!(
        "maintenance mode is on for `{}`: every route answers 503{allowed} (Retry-After: {retry_after}); `stack maintenance off` ends it",
        target.desired.project
    ));
    Ok(())
}

fn switch_off(context: &Context, dir: &MaintenanceDir<'_>) -> Result<()> {
    let was_on = dir.state()?.is_some();
    dir.remove(SWITCH_FILE)?;
    if context.global.json {
        context
            .printer
            .json(&json!({"maintenance": false, "was_on": was_on, "dir": dir.display()}));
    }
    context.printer.status(if was_on {
        "maintenance mode is off: the proxy serves the app again"
    } else {
        "maintenance mode was not on; nothing to do"
    });
    Ok(())
}

/// Let the running proxy read the snippets again, gracefully (see [`Engine::reload_proxy`]).
async fn reload_proxy(engine: &Engine, desired: &Desired) -> Result<()> {
    let Some(proxy) = desired.service(PROXY_SERVICE) else {
        return Ok(());
    };
    match engine.reload_proxy(desired, proxy).await? {
        None => Ok(()),
        Some(refused) => Err(Error::Outside {
            message: format!(
                "the proxy refused the maintenance settings (`{}` exited {}); nothing was changed",
                refused.step, refused.code
            ),
            causes: vec![refused.output],
            hint: Some("see `stack logs proxy`".into()),
        }),
    }
}
