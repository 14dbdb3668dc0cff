//! Every project key sorted by what it configures; unknown keys reported with the
//! nearest known one, and keys that read two ways warned about.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::keys::{global_names, ServiceAttr, ServiceIndex, SERVER_KEYS};
use crate::config::lookup::Errors;
use crate::config::presets::{self, Preset};
use crate::error::{nearest, Diagnostic, Span, Warning, WarningKind};
use crate::project::Setting;

/// Every project key, by what it configures.
#[derive(Debug, Default)]
pub(in crate::config) struct Classified<'a> {
    /// `SERVICE_` keys grouped by service, with the attribute each sets.
    pub service_attrs: BTreeMap<String, Vec<(ServiceAttr, &'a str)>>,
    /// Known `STACK_` keys.
    pub globals: Vec<&'a str>,
    /// Known `SERVER_` keys.
    pub server: Vec<&'a str>,
    /// Keys of a preset: its own, or any set in the secrets file.
    pub preset: Vec<&'a str>,
    /// Keys of no kind: variables other values interpolate.
    pub other: Vec<&'a str>,
    /// Keys with a known prefix that name nothing, in key order.
    pub unknown: Vec<Unknown<'a>>,
}

/// A key that looks like a configuration key but names nothing.
#[derive(Debug, Clone)]
pub(in crate::config) enum Unknown<'a> {
    /// A `SERVICE_` key of no known service or attribute.
    Service(&'a str, &'a Span),
    /// A `STACK_` key that is no global key.
    Global(&'a str, &'a Span),
    /// A `SERVER_` key that is no server key.
    Server(&'a str, &'a Span),
    /// A key with a preset's prefix that is none of its keys.
    Preset(&'a str, &'a Span, &'static Preset),
}

/// Sort every key by its prefix; pure, and cheap even for unknown keys (no hints yet).
pub(in crate::config) fn classify_keys<'a>(
    settings: &'a indexmap::IndexMap<String, Setting>,
    index: &ServiceIndex,
    secret_layer: &BTreeSet<&str>,
) -> Classified<'a> {
    let mut out = Classified::default();
    for (key, setting) in settings {
        let (key, span) = (key.as_str(), &setting.span);
        if key.starts_with("SERVICE_") {
            match index.parse(key) {
                Some((service, attr)) => out
                    .service_attrs
                    .entry(service)
                    .or_default()
                    .push((attr, key)),
                None => out.unknown.push(Unknown::Service(key, span)),
            }
        } else if key.starts_with("STACK_") {
            if global_names().any(|k| k == key) || key == "STACK_ENV" {
                out.globals.push(key);
            } else {
                out.unknown.push(Unknown::Global(key, span));
            }
        } else if key.starts_with("SERVER_") {
            if SERVER_KEYS.contains(&key) {
                out.server.push(key);
            } else {
                out.unknown.push(Unknown::Server(key, span));
            }
        } else if let Some(preset) = presets::owner_of(key) {
            let known = presets::preset_keys(preset);
            if known.iter().any(|k| k == key) || secret_layer.contains(key) {
                out.preset.push(key);
            } else {
                out.unknown.push(Unknown::Preset(key, span, preset));
            }
        } else {
            out.other.push(key);
        }
    }
    out
}

/// Report every unknown key, with the nearest known one as a hint (searched for only
/// while errors are still reported).
pub(super) fn report_unknown(unknown: &[Unknown], index: &ServiceIndex, errors: &mut Errors) {
    for key in unknown {
        errors.push_with(|| match *key {
            Unknown::Service(key, span) => index.unknown(key, Some(span)),
            Unknown::Global(key, span) => unknown_key(
                key,
                &global_names().collect::<Vec<_>>(),
                span,
                "global keys",
            ),
            Unknown::Server(key, span) => unknown_key(key, SERVER_KEYS, span, "server keys"),
            Unknown::Preset(key, span, preset) => {
                let known = presets::preset_keys(preset);
                let names: Vec<&str> = known.iter().map(String::as_str).collect();
                unknown_key(key, &names, span, "its keys")
            }
        });
    }
}

/// `unknown key`, with the nearest of `known` or else the list of them.
fn unknown_key(key: &str, known: &[&str], span: &Span, what: &str) -> Diagnostic {
    let diagnostic = Diagnostic::new(format!("unknown key `{key}`")).at(span);
    match nearest(key, known.iter().copied()) {
        Some(near) => diagnostic.hint(format!("did you mean `{near}`?")),
        None => diagnostic.hint(format!("{what}: {}", known.join(", "))),
    }
}

/// A warning for every `SERVICE_` key that reads two ways because one service's name
/// continues another's (`web` and `web-env`: `SERVICE_WEB_ENV_PORT`), naming both
/// readings; the longer service name wins.
pub(super) fn ambiguous_keys(
    settings: &indexmap::IndexMap<String, Setting>,
    index: &ServiceIndex,
) -> Vec<Warning> {
    let mut out = Vec::new();
    for (key, setting) in settings {
        let readings = index.readings(key);
        let [(service, attr), others @ ..] = readings.as_slice() else {
            continue;
        };
        if others.is_empty() {
            continue;
        }
        let also: Vec<String> = others
            .iter()
            .map(|(other, attr)| format!("{} of service `{other}`", attr.describe()))
            .collect();
        out.push(Warning::new(
            WarningKind::AmbiguousKey,
            key,
            Diagnostic::new(format!(
                "`{key}` is ambiguous: it is read as {} of service `{service}`, but could be {}",
                attr.describe(),
                also.join(" or ")
            ))
            .at(&setting.span)
            .hint(format!(
                "rename one of the services so neither name continues the other (`{service}` and {})",
                others
                    .iter()
                    .map(|(o, _)| format!("`{o}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        ));
    }
    out
}
