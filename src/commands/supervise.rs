//! `stack supervise --bundle DIR`: what the systemd unit runs on a server. Converge the
//! engine to the release's saved desired state, then restart any container whose health
//! check turns unhealthy (Docker's restart policy only covers exits).

use std::path::Path;

use futures_util::StreamExt;

use super::{runtime, Context};
use crate::cli::SuperviseArgs;
use crate::deploy::DESIRED_FILE;
use crate::engine::converge::Converger;
use crate::engine::Engine;
use crate::error::{Diagnostic, Error, Result};
use crate::plan::{self, Desired};
use crate::printer::Progress;

/// The desired state saved in a deployed bundle.
pub fn read_desired(bundle: &Path) -> Result<Desired> {
    let path = bundle.join(DESIRED_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::from(
            Diagnostic::new(format!("cannot read `{}`: {e}", path.display()))
                .hint("point `--bundle` at a release directory written by `stack deploy`"),
        )
    })?;
    serde_json::from_str(&text).map_err(|e| {
        Diagnostic::new(format!(
            "`{}` is not a desired state stack wrote: {e}",
            path.display()
        ))
        .into()
    })
}

pub fn run(context: &Context, args: &SuperviseArgs) -> Result<()> {
    let desired = read_desired(&args.bundle)?;
    let progress = Progress::new(&context.printer);
    runtime()?.block_on(async {
        let engine = Engine::connect().await?;
        let converger = Converger::new(
            engine.clone(),
            desired,
            progress,
            std::time::Duration::from_secs(300),
            std::time::Duration::from_secs(3),
        );
        let mut observed = engine.observe(&converger.desired).await?;
        converger.ensure_images(&mut observed, false, &[]).await?;
        let actions = plan::plan(&converger.desired, &observed, &[]);
        converger.apply(&actions, &observed, &[]).await?;
        context.printer.status(format!("`{}` is up; watching health", converger.desired.project));
        if args.once {
            return Ok(());
        }
        let mut events = Box::pin(engine.events(&converger.desired.project));
        loop {
            tokio::select! {
                event = events.next() => {
                    let Some((id, action)) = event else {
                        return Err(Error::outside("the engine's event stream ended"));
                    };
                    if action.starts_with("health_status") && action.contains("unhealthy") {
                        context.printer.status(format!("container `{}` is unhealthy; restarting it", &id[..12.min(id.len())]));
                        if let Err(e) = engine.restart(&id).await {
                            context.printer.error(&e.render());
                        }
                    }
                }
                _ = tokio::signal::ctrl_c() => return Ok(()),
            }
        }
    })
}
