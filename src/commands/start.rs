//! `stack start [SERVICE…]`: render the bundle, plan against the engine, converge,
//! wait for readiness.

use serde_json::json;

use super::build::{default_out, diff};
use super::{check_services, runtime, Context};
use crate::cli::StartArgs;
use crate::engine::converge::Converger;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::plan;
use crate::printer::Progress;
use crate::render;

pub fn run(context: &Context, args: &StartArgs) -> Result<()> {
    let env = context.env();
    let loaded = context.load_with_secrets(&env)?;
    let config = &loaded.config;
    check_services(config, &args.services)?;
    let out = default_out(&config.project_dir, &env);
    let bundle = render::render(config, &out)?;
    if !args.dry_run && !diff(&bundle, &out)?.is_empty() {
        crate::fsio::write_bundle(&bundle, &out)?;
        context
            .printer
            .detail(format!("wrote the bundle to `{}`", out.display()));
    }
    let desired = plan::desired(config, &bundle, &out, &config.project_dir);
    let progress = Progress::new(&context.printer);
    runtime()?.block_on(async {
        let engine = Engine::connect().await?;
        let converger = Converger::new(
            engine.clone(),
            desired,
            progress,
            config.health_timeout,
            config.drain,
        );
        if args.dry_run {
            let observed = engine.observe(&converger.desired).await?;
            let actions = plan::plan(&converger.desired, &observed, &args.services);
            let mut lines: Vec<String> = Vec::new();
            for service in &converger.desired.services {
                if !observed.images.contains_key(&service.spec.image) {
                    let verb = if service.build.is_some() {
                        "build"
                    } else {
                        "pull"
                    };
                    lines.push(format!("{}: {verb} `{}`", service.name, service.spec.image));
                }
            }
            lines.extend(actions.iter().map(|a| a.to_string()));
            if context.global.json {
                context
                    .printer
                    .json(&json!({"env": env, "dry_run": true, "actions": actions}));
            } else if lines.is_empty() {
                context.printer.status("nothing to change");
            } else {
                context
                    .printer
                    .out(lines.iter().map(|l| format!("{l}\n")).collect::<String>());
            }
            return Ok(());
        }
        let work = async {
            let mut observed = engine.observe(&converger.desired).await?;
            converger
                .ensure_images(&mut observed, args.build, &args.services)
                .await?;
            let actions = plan::plan(&converger.desired, &observed, &args.services);
            if actions.is_empty() {
                context
                    .printer
                    .detail("nothing to change; checking readiness");
            }
            converger.apply(&actions, &observed, &args.services).await?;
            Ok::<_, Error>(actions)
        };
        let actions = tokio::select! {
            result = work => result?,
            _ = tokio::signal::ctrl_c() => {
                return Err(Error::No("interrupted; run `stack start` again to converge".into()));
            }
        };
        if context.global.json {
            context
                .printer
                .json(&json!({"env": env, "actions": actions, "ready": true}));
        }
        context.printer.status(format!(
            "`{}` ({env}) is up: {} change(s), every service ready",
            config.project,
            actions.len()
        ));
        Ok(())
    })
}
