//! `stack exec SERVICE [--replica N] [--on ENV] -- CMD…` (a command in a running
//! container) and `stack run SERVICE [--on ENV] -- CMD…` (a one-off container of the
//! service, removed afterwards). Both exit with the command's exit code.

use super::target::Target;
use super::{runtime, Context};
use crate::cli::{ExecArgs, RunArgs};
use crate::engine::attach::stdin_is_terminal;
use crate::engine::oneoff::Removal;
use crate::error::{Diagnostic, Error, Result};
use crate::model::DesiredService;

/// The exit code of a command ended by Ctrl-C (128 + SIGINT), as shells report it.
const INTERRUPTED: i32 = 130;

fn service<'a>(target: &'a Target, name: &str) -> Result<&'a DesiredService> {
    target.desired.service(name).ok_or_else(|| {
        let known: Vec<&str> = target
            .desired
            .services
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        Diagnostic::new(format!("no service `{name}` in this release"))
            .hint(format!("services: {}", known.join(", ")))
            .into()
    })
}

/// The command's exit code as ours.
fn passed_through(code: i64) -> Result<()> {
    match code {
        0 => Ok(()),
        code => Err(Error::Exit(i32::try_from(code).unwrap_or(1).clamp(1, 255))),
    }
}

pub fn exec(context: &Context, args: &ExecArgs) -> Result<()> {
    runtime()?.block_on(async {
        let target = Target::of(context, &args.on).await?;
        let service = service(&target, &args.service)?;
        let containers = target.engine.containers(&target.desired.project).await?;
        let mine: Vec<_> = containers
            .iter()
            .filter(|c| c.service == service.name && c.running)
            .collect();
        let container = match args.replica {
            Some(number) => mine.iter().find(|c| c.number == number),
            None => mine.first(),
        }
        .ok_or_else(|| {
            let numbers: Vec<String> = mine.iter().map(|c| c.number.to_string()).collect();
            Error::No(match args.replica {
                Some(n) => format!(
                    "service `{}` has no running replica {n} (running: {})",
                    service.name,
                    if numbers.is_empty() {
                        "none".into()
                    } else {
                        numbers.join(", ")
                    }
                ),
                None => format!("service `{}` has no running container", service.name),
            })
        })?;
        let tty = stdin_is_terminal();
        // Without a TTY, Ctrl-C reaches stack, not the command: stack passes it on.
        let interrupt = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let code = target
            .engine
            .exec_attached(&container.id, &args.command, tty, interrupt)
            .await?;
        passed_through(code)
    })
}

pub fn run(context: &Context, args: &RunArgs) -> Result<()> {
    runtime()?.block_on(async {
        let target = Target::of(context, &args.on).await?;
        let service = service(&target, &args.service)?;
        let tty = stdin_is_terminal();
        let engine = &target.engine;
        let id = engine
            .create_oneoff(
                &target.desired,
                service,
                (&args.command, "run"),
                (&target.placement, &target.secrets),
                Some(tty),
            )
            .await?;
        // Removed on every way out, Ctrl-C included (the guard's drop).
        let removal = Removal::new(engine, &id);
        let code = tokio::select! {
            code = engine.run_attached(&service.name, &id, tty) => code,
            _ = tokio::signal::ctrl_c() => Ok(i64::from(INTERRUPTED)),
        };
        removal.now(engine).await?;
        passed_through(code?)
    })
}
