//! `stack backup list`: the dumps and volume archives in the backup target.

use serde_json::json;

use super::names::{archive_parts, entry_time, human_age, human_size, iso, now};
use super::{step, Site, BACKUP};
use crate::commands::Context;
use crate::error::{Error, Result};

/// One dump or volume archive as `list` shows it.
#[derive(Debug, serde::Serialize)]
pub(super) struct Entry {
    pub(super) name: String,
    /// `scheduled` or `safety` (dumps), `volume` or `volume-safety` (archives).
    kind: &'static str,
    /// The volume of an archive.
    pub(super) volume: Option<String>,
    time: i64,
    size_bytes: u64,
    manifest: bool,
    /// `ok`, `failed`, or none.
    verified: Option<String>,
    verified_at: Option<i64>,
}

pub(super) async fn entries(context: &Context, site: &Site) -> Result<Vec<Entry>> {
    let (ok, machine) = step(context, site, BACKUP, &["list"], None).await?;
    if !ok {
        return Err(Error::No(format!(
            "cannot list the backups on {} (above)",
            site.name
        )));
    }
    Ok(machine
        .iter()
        .filter_map(|line| {
            let mut fields = line.strip_prefix("entry\t")?.split('\t');
            let name = fields.next()?.to_string();
            let size_bytes = fields.next()?.parse().ok()?;
            let manifest = fields.next()? == "yes";
            let verified = fields.next().filter(|v| *v != "-").map(String::from);
            let verified_at = fields.next().and_then(|t| t.parse().ok());
            let volume = archive_parts(&name).map(|(volume, _)| volume.to_string());
            Some(Entry {
                time: entry_time(&name)?,
                kind: match (name.starts_with("safety-"), volume.is_some()) {
                    (true, false) => "safety",
                    (false, false) => "scheduled",
                    (true, true) => "volume-safety",
                    (false, true) => "volume",
                },
                volume,
                name,
                size_bytes,
                manifest,
                verified,
                verified_at,
            })
        })
        .collect())
}

pub(super) async fn list(context: &Context, site: &Site) -> Result<()> {
    let entries = entries(context, site).await?;
    let now = now();
    if context.global.json {
        let rows: Vec<_> = entries
            .iter()
            .map(|e| {
                json!({
                    "name": e.name, "kind": e.kind, "volume": e.volume, "time": iso(e.time), "unix_time": e.time,
                    "age_seconds": now - e.time, "size_bytes": e.size_bytes,
                    "manifest": e.manifest, "verified": e.verified,
                    "verified_at": e.verified_at.map(iso),
                })
            })
            .collect();
        context.printer.json(&json!({"dumps": rows}));
        return Ok(());
    }
    if entries.is_empty() {
        context
            .printer
            .status(format!("no dumps yet on {}", site.name));
        return Ok(());
    }
    // Volume archives have longer names than dumps.
    let width = entries
        .iter()
        .map(|e| e.name.len())
        .max()
        .unwrap_or(0)
        .max(36);
    let heading = if entries.iter().any(|e| e.volume.is_some()) {
        "BACKUP"
    } else {
        "DUMP"
    };
    let mut text = format!(
        "{:<width$} {:<21} {:>10} {:>6}  {}\n",
        heading, "TIME (UTC)", "SIZE", "AGE", "VERIFIED"
    );
    for e in &entries {
        let verified = match (&e.verified, e.verified_at) {
            (Some(v), Some(at)) => format!("{v} ({} ago)", human_age(now - at)),
            (Some(v), None) => v.clone(),
            (None, _) if !e.manifest => "no manifest".into(),
            (None, _) => "not yet".into(),
        };
        text.push_str(&format!(
            "{:<width$} {:<21} {:>10} {:>6}  {verified}\n",
            e.name,
            iso(e.time),
            human_size(e.size_bytes),
            human_age(now - e.time),
        ));
    }
    context.printer.out(text);
    Ok(())
}
