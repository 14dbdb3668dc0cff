//! The secret names (declared, the presets', the secrets file's) and each secret's
//! state, known before any other value is read.

use std::collections::{BTreeMap, BTreeSet};

use super::names::EnabledPresets;
use crate::config::lookup::{Errors, Keys};
use crate::config::model::SecretSpec;
use crate::error::Span;
use crate::project::{Resolved, SourceKind};

/// Keys set by the environment's secrets file.
pub(super) fn secret_layer_keys(resolved: &Resolved) -> BTreeSet<&str> {
    resolved
        .settings
        .iter()
        .filter(|(_, s)| s.kind == SourceKind::Secrets)
        .map(|(k, _)| k.as_str())
        .collect()
}

/// The secret names, known before any value is read so every read knows whether its
/// value is secret; the phases read the same keys again and report their errors.
pub(super) fn probe_secret_names(
    resolved: &Resolved,
    builtins: &BTreeMap<String, String>,
    secret_layer: &BTreeSet<&str>,
) -> BTreeSet<String> {
    let probe = Keys::new(resolved, builtins, BTreeSet::new());
    let mut ignored = Errors::default();
    let enabled = EnabledPresets::read(&probe, &mut ignored);
    secret_names(&probe, &enabled, secret_layer, &mut ignored)
}

/// Secret names: those `STACK_SECRETS` declares, the presets' and the secrets file's keys.
pub(super) fn secret_names(
    keys: &Keys,
    enabled: &EnabledPresets,
    secret_layer: &BTreeSet<&str>,
    errors: &mut Errors,
) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = BTreeSet::new();
    if let Some(value) = keys.get("STACK_SECRETS") {
        for name in value.list() {
            let span = value.span.cloned();
            if let Err(diagnostic) = crate::project::syntax::check_key(
                &name,
                span.as_ref().unwrap_or(&placeholder_span()),
            ) {
                errors.push(diagnostic.with_span(span));
                continue;
            }
            names.insert(name);
        }
    }
    for preset in &enabled.list {
        names.extend(preset.secrets.iter().map(|s| s.to_string()));
    }
    names.extend(secret_layer.iter().map(|s| s.to_string()));
    names
}

/// Where a bad `STACK_SECRETS` item is reported when the list has no line (never shown).
fn placeholder_span() -> Span {
    Span {
        source: "STACK_SECRETS".into(),
        line: 0,
        col: 0,
        len: 0,
        line_text: "".into(),
    }
}

/// Each secret, whether it has a value, and where it is set.
pub(super) fn secret_specs(keys: &Keys, names: &BTreeSet<String>) -> Vec<SecretSpec> {
    names
        .iter()
        .map(|name| SecretSpec {
            name: name.clone(),
            present: keys.is_set(name),
            span: keys.resolved.settings.get(name).map(|s| s.span.clone()),
        })
        .collect()
}
