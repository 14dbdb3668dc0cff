//! `stack logs [SERVICE…] [-f] [--tail N]`: every container's log, prefixed by service.

use futures_util::StreamExt;

use super::{check_services, runtime, Context};
use crate::engine::Engine;
use crate::error::Result;

pub fn run(context: &Context, args: &crate::cli::LogsArgs) -> Result<()> {
    let loaded = context.load(&context.env())?;
    check_services(&loaded.config, &args.services)?;
    let project = loaded.config.project.clone();
    runtime()?.block_on(async {
        let engine = Engine::connect().await?;
        let containers: Vec<_> = engine
            .containers(&project)
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
                .logs(&c.id, args.follow, args.tail)
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
    })
}
