//! `stack releases ENV` and `stack audit ENV`: what the server keeps.

use std::collections::BTreeMap;

use serde_json::json;

use super::super::{runtime, server_engine, server_of, Context};
use crate::cli::EnvArg;
use crate::deploy::Remote;
use crate::error::{Error, Result};

pub fn releases(context: &Context, args: &EnvArg) -> Result<()> {
    let env = context.env_or(&args.env);
    let loaded = context.load(&env)?;
    let server = server_of(&loaded)?;
    let remote = Remote::connect(&server, &env)?;
    let releases = remote.releases()?;
    let ids: Vec<String> = releases.iter().map(|r| r.id.clone()).collect();
    let pins = remote.pins(&ids)?;
    // Which pinned images the server still has: a release without them cannot come back.
    let missing: BTreeMap<String, Vec<String>> = runtime()?.block_on(async {
        let engine = server_engine(&remote).await?;
        let mut missing = BTreeMap::new();
        for (id, images) in &pins {
            let mut gone = Vec::new();
            for (_, pinned) in images {
                if engine.image_id(&pinned.reference).await?.is_none() {
                    gone.push(pinned.reference.clone());
                }
            }
            missing.insert(id.clone(), gone);
        }
        Ok::<_, Error>(missing)
    })?;
    let rows: Vec<_> = releases
        .iter()
        .map(|r| {
            let images: Vec<_> = pins.get(&r.id).into_iter().flatten().map(|(service, p)| {
                json!({"service": service, "image": p.reference, "id": p.id, "repo_digest": p.repo_digest})
            }).collect();
            let gone = missing.get(&r.id).cloned().unwrap_or_default();
            json!({"id": r.id, "current": r.current, "images": images, "missing_images": gone, "restorable": gone.is_empty()})
        })
        .collect();
    if context.global.json {
        context.printer.json(&json!({"env": env, "releases": rows}));
        return Ok(());
    }
    if releases.is_empty() {
        context
            .printer
            .status(format!("no releases of `{env}` on `{}`", server.host));
    }
    let mut text = String::new();
    for release in &releases {
        let mark = if release.current { "*" } else { " " };
        text.push_str(&format!("{mark} {}\n", release.id));
        for (service, pinned) in pins.get(&release.id).into_iter().flatten() {
            let short = pinned.id.trim_start_matches("sha256:");
            text.push_str(&format!(
                "    {service:<16} {}\n",
                &short[..short.len().min(12)]
            ));
        }
        for gone in missing.get(&release.id).into_iter().flatten() {
            text.push_str(&format!(
                "    cannot be rolled back to: image `{gone}` is gone\n"
            ));
        }
    }
    context.printer.out(text);
    Ok(())
}

pub fn audit(context: &Context, args: &EnvArg) -> Result<()> {
    let env = context.env_or(&args.env);
    let loaded = context.load(&env)?;
    let server = server_of(&loaded)?;
    let remote = Remote::connect(&server, &env)?;
    let log = remote.audit_log()?;
    if context.global.json {
        let entries: Vec<_> = log
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split('\t').collect();
                // `user (ssh: account from address)`: the deployer's name, then who the
                // server saw (lines written before stack recorded it have no `ssh`).
                let (user, ssh) = match f.get(1)?.split_once(" (ssh: ") {
                    Some((user, rest)) => (user, Some(rest.trim_end_matches(')'))),
                    None => (f[1], None),
                };
                (f.len() == 6).then(|| json!({"time": f[0], "user": user, "ssh": ssh, "env": f[2], "action": f[3], "release": f[4], "result": f[5]}))
            })
            .collect();
        context
            .printer
            .json(&json!({"env": env, "entries": entries}));
    } else {
        context.printer.out(log);
    }
    Ok(())
}
