//! `stack config [--json]` and `stack config explain KEY`. The text output is one line
//! per key: values are escaped, so a newline in a value cannot forge a line.

use std::collections::BTreeSet;

use serde_json::{json, Map};

use super::Context;
use crate::cli::{ConfigAction, ConfigArgs};
use crate::config::{Loaded, REDACTED};
use crate::error::{nearest, Diagnostic, Result};
use crate::printer::escape;

/// Keys whose value must not be shown: secrets and anything built from one.
fn hidden(loaded: &Loaded) -> BTreeSet<String> {
    let secrets: BTreeSet<&str> = loaded
        .config
        .secrets
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    loaded
        .resolved
        .settings
        .iter()
        .filter(|(key, setting)| {
            secrets.contains(key.as_str())
                || setting.refs.iter().any(|r| secrets.contains(r.as_str()))
        })
        .map(|(key, _)| key.clone())
        .collect()
}

pub fn run(context: &Context, args: &ConfigArgs) -> Result<()> {
    let env = context.env();
    let loaded = context.load(&env)?;
    let hidden = hidden(&loaded);
    match &args.action {
        Some(ConfigAction::Explain { key }) => explain(context, &loaded, &env, &hidden, key)?,
        None => list(context, &loaded, &env, &hidden),
    }
    Ok(())
}

/// `value` as shown: redacted when `key` is hidden.
fn shown(hidden: &BTreeSet<String>, key: &str, value: &str) -> String {
    if hidden.contains(key) {
        REDACTED.to_string()
    } else {
        value.to_string()
    }
}

/// `config explain KEY`: its value and every line that set it, or its built-in default.
fn explain(
    context: &Context,
    loaded: &Loaded,
    env: &str,
    hidden: &BTreeSet<String>,
    key: &str,
) -> Result<()> {
    let Some(setting) = loaded.resolved.settings.get(key) else {
        if let Some(value) = loaded.defaults.get(key) {
            if context.global.json {
                context
                    .printer
                    .json(&json!({"key": key, "value": value, "default": true, "sources": []}));
            } else {
                context.printer.out(format!(
                    "{key}={}\n  (built-in default; not set in any file)\n",
                    escape(value)
                ));
            }
            return Ok(());
        }
        let mut diagnostic = Diagnostic::new(format!("`{key}` is not set in environment `{env}`"));
        if let Some(near) = nearest(key, loaded.resolved.settings.keys().map(String::as_str)) {
            diagnostic = diagnostic.hint(format!("did you mean `{near}`?"));
        }
        return Err(diagnostic.into());
    };
    let value = shown(hidden, key, &setting.value);
    if context.global.json {
        let sources: Vec<String> = setting.history.iter().map(|s| s.location()).collect();
        context.printer.json(&json!({"key": key, "value": value, "secret": hidden.contains(key), "sources": sources}));
    } else {
        let mut text = format!("{key}={}\n", escape(&value));
        let last = setting.history.len().saturating_sub(1);
        for (index, span) in setting.history.iter().enumerate() {
            let marker = if index == last {
                "set by     "
            } else {
                "overridden "
            };
            text.push_str(&format!("  {marker}{}\n", span.location()));
        }
        context.printer.out(text);
    }
    Ok(())
}

/// `config`: every key with its value and the line that set it, or all as JSON.
fn list(context: &Context, loaded: &Loaded, env: &str, hidden: &BTreeSet<String>) {
    if context.global.json {
        let mut keys = Map::new();
        for (key, setting) in &loaded.resolved.settings {
            keys.insert(
                key.clone(),
                json!({"value": shown(hidden, key, &setting.value), "source": setting.span.location()}),
            );
        }
        let config = serde_json::to_value(&loaded.config).unwrap_or_default();
        context
            .printer
            .json(&json!({"env": env, "keys": keys, "config": config}));
    } else {
        let width = loaded
            .resolved
            .settings
            .keys()
            .map(|k| k.len())
            .max()
            .unwrap_or(0);
        let mut text = String::new();
        for (key, setting) in &loaded.resolved.settings {
            text.push_str(&format!(
                "{key:width$} = {}  # {}\n",
                escape(&shown(hidden, key, &setting.value)),
                setting.span.location()
            ));
        }
        context.printer.out(text);
    }
}
