//! `stack start [SERVICE…]`: render the bundle, plan against the engine, converge,
//! wait for readiness.

use serde_json::json;

use super::{check_services, converge, default_out, diff, print_plan, runtime, Context};
use crate::cli::StartArgs;
use crate::engine::converge::Converger;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::{self, Placement};
use crate::printer::Progress;

pub fn run(context: &Context, args: &StartArgs) -> Result<()> {
    let env = context.env();
    let loaded = context.load_with_secrets(&env)?;
    let config = &loaded.config;
    let out = default_out(&config.project_dir, &env);
    let (bundle, desired) = super::bundle_of(config, &out)?;
    check_services(&desired, &args.services)?;
    if !args.dry_run && !diff(&bundle, &out)?.is_empty() {
        crate::fsio::write_bundle(&bundle, &out)?;
        context
            .printer
            .detail(format!("wrote the bundle to `{}`", out.display()));
    }
    let placement = Placement {
        root: config.project_dir.clone(),
        bundle: out.clone(),
    };
    if !args.dry_run {
        crate::fsio::private_dirs(&desired, &placement);
        crate::fsio::state_dirs(&desired, &placement);
    }
    let progress = Progress::new(&context.printer);
    runtime()?.block_on(async {
        let engine = Engine::connect().await?;
        let converger = Converger::new(
            engine.clone(),
            desired,
            (placement, model::secrets(config)),
            progress,
        );
        if args.dry_run {
            // The bundle was not written: the proxy's copies are compared with it.
            let texts = bundle.files.iter();
            let texts = texts.map(|(path, file)| (path.clone(), file.contents.clone()));
            let stale = converger.stale_files_of(&texts.collect())?;
            return print_plan(context, &converger, (&args.services, Some(stale))).await;
        }
        let work = converge(&converger, args.build, &args.services);
        let actions = tokio::select! {
            result = work => result?,
            _ = tokio::signal::ctrl_c() => {
                return Err(Error::No("interrupted; run `stack start` again to converge".into()));
            }
        };
        // Only a whole start: a start of some services leaves the proxy's hosts alone.
        if args.services.is_empty() {
            engine
                .report_certificates(&converger.desired, &context.printer)
                .await;
        }
        if context.global.json {
            context
                .printer
                .json(&json!({"env": env, "actions": actions, "ready": true, "bytes": converger.progress.totals()}));
        }
        context.printer.status(format!(
            "`{}` ({env}) is up: {} change(s), every service ready",
            config.project,
            actions.len()
        ));
        Ok(())
    })
}
