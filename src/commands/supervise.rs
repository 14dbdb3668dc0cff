//! `stack supervise --bundle DIR`: what the systemd unit runs on a server. Converge the
//! engine to the release's saved desired state, then restart any container whose health
//! check turns unhealthy (Docker's restart policy only covers exits).

use futures_util::StreamExt;

use super::{converge, read_desired, runtime, Context};
use crate::cli::SuperviseArgs;
use crate::engine::converge::Converger;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::{Placement, Secrets};
use crate::printer::Progress;

pub fn run(context: &Context, args: &SuperviseArgs) -> Result<()> {
    let desired = read_desired(&args.bundle)?;
    let secrets = Secrets::read(&args.bundle)?;
    // The unit runs `SERVER_PATH/current`; a release is `SERVER_PATH/releases/<id>`.
    let bundle =
        std::path::absolute(&args.bundle).map_err(|e| Error::io("resolve", &args.bundle, e))?;
    let parent = bundle.parent().unwrap_or(&bundle);
    let root = match parent.file_name() {
        Some(name) if name == "releases" => parent.parent().unwrap_or(parent),
        _ => parent,
    }
    .to_path_buf();
    let placement = Placement { root, bundle };
    let progress = Progress::new(&context.printer);
    runtime()?.block_on(async {
        let engine = Engine::connect().await?;
        let mut converger =
            Converger::new(engine.clone(), desired, (placement, secrets), progress);
        converger.run_releases = false;
        converge(&converger, false, &[]).await?;
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
