//! `stack logs [SERVICE…] [-f] [--tail N]`: every container's log, prefixed by service.

use futures_util::StreamExt;

use super::{check_services, runtime, Context};
use crate::engine::Engine;
use crate::error::Result;

pub fn run(context: &Context, args: &crate::cli::LogsArgs) -> Result<()> {
    let since = since(args);
    // Through the deploy connection with `--on`: the server's engine and the project
    // name of the release `current` there.
    let remote = match &args.on {
        Some(env) => {
            let loaded = context.load(env)?;
            let server = super::server_of(&loaded)?;
            Some((crate::deploy::Remote::connect(&server, env)?, loaded))
        }
        None => None,
    };
    let loaded = match &remote {
        Some((_, loaded)) => loaded.clone(),
        None => context.load(&context.env())?,
    };
    check_services(&super::desired_of(&loaded.config), &args.services)?;
    let project = loaded.config.project.clone();
    runtime()?.block_on(async {
        let engine = match &remote {
            Some((remote, _)) => super::server_engine(remote).await?,
            None => Engine::connect().await?,
        };
        let follow = follow(context, &engine, &project, args, since);
        // Ctrl-C ends the follow: the streams (and, with `--on`, the connection) close.
        tokio::select! {
            result = follow => result,
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}

/// `--since`: the Unix time that long ago, or none.
fn since(args: &crate::cli::LogsArgs) -> Option<i64> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    args.since
        .map(|ago| now.saturating_sub(ago.as_secs()) as i64)
}

/// Print the logs of the project's containers (those of `args.services`, or all), each
/// line prefixed with its container, until the streams end.
async fn follow(
    context: &Context,
    engine: &Engine,
    project: &str,
    args: &crate::cli::LogsArgs,
    since: Option<i64>,
) -> Result<()> {
    let containers: Vec<_> = engine
        .containers(project)
        .await?
        .into_iter()
        .filter(|c| args.services.is_empty() || args.services.contains(&c.service))
        .collect();
    let width = containers
        .iter()
        .map(|c| c.service.len() + 2)
        .max()
        .unwrap_or(0);
    let streams = containers.iter().map(|c| {
        let prefix = format!("{:<width$}| ", format!("{}-{}", c.service, c.number));
        engine
            .logs_since(&c.id, args.follow, args.tail, since)
            .map(move |chunk| chunk.map(|text| (prefix.clone(), text)))
            .boxed()
    });
    let mut merged = futures_util::stream::select_all(streams);
    let mut pending: std::collections::HashMap<String, String> = Default::default();
    while let Some(item) = merged.next().await {
        let (prefix, text) = item?;
        let buffer = pending.entry(prefix.clone()).or_default();
        buffer.push_str(&text);
        let mut out = String::new();
        while let Some(end) = buffer.find('\n') {
            out.push_str(&prefix);
            out.push_str(&buffer[..=end]);
            buffer.drain(..=end);
        }
        if !out.is_empty() {
            context.printer.out(out);
        }
    }
    for (prefix, rest) in pending {
        if !rest.is_empty() {
            context.printer.out(format!("{prefix}{rest}\n"));
        }
    }
    Ok(())
}
