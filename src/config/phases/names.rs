//! Which presets are on and which services exist: `<PRESET>_ENABLED`,
//! `STACK_SERVICES`, and the service names `SERVICE_` keys may use.

use std::collections::BTreeMap;

use crate::config::lookup::{Errors, Keys};
use crate::config::model::ProxyKind;
use crate::config::presets::{self, Preset, PresetService, When, PRESETS};
use crate::config::values::Value;
use crate::error::{Diagnostic, Span};

/// The presets that are on, with the line that turned each on.
pub(super) struct EnabledPresets {
    pub list: Vec<&'static Preset>,
    pub spans: BTreeMap<&'static str, Option<Span>>,
}

impl EnabledPresets {
    /// Read every `<PRESET>_ENABLED`, then check each enabled preset's requirements.
    pub(super) fn read(keys: &Keys, errors: &mut Errors) -> EnabledPresets {
        let mut enabled = EnabledPresets {
            list: Vec::new(),
            spans: BTreeMap::new(),
        };
        for preset in PRESETS {
            let key = presets::enabled_key(preset);
            let Some(value) = keys.get_owned(&key) else {
                continue;
            };
            if errors.take(value.boolean()) == Some(true) {
                enabled.list.push(preset);
                enabled.spans.insert(preset.name, value.span.cloned());
            }
        }
        enabled.check_requires(errors);
        enabled
    }

    /// Whether the preset called `name` is on.
    pub(super) fn contains(&self, name: &str) -> bool {
        self.list.iter().any(|p| p.name == name)
    }

    /// Every enabled preset needs the presets it requires enabled too.
    fn check_requires(&self, errors: &mut Errors) {
        for preset in &self.list {
            for required in preset.requires {
                if self.contains(required) {
                    continue;
                }
                errors.push(
                    Diagnostic::new(format!(
                        "the `{}` preset needs the `{required}` preset, which is not enabled",
                        preset.name
                    ))
                    .with_span(self.spans[preset.name].clone())
                    .hint(format!(
                        "set `{required}_ENABLED=true`, or remove `{}`",
                        presets::enabled_key(preset)
                    )),
                );
            }
        }
    }

    /// The services of the enabled presets that exist with this configuration.
    pub(super) fn services(&self, keys: &Keys) -> Vec<(&'static Preset, &'static PresetService)> {
        self.list
            .iter()
            .flat_map(|preset| preset.services.iter().map(move |s| (*preset, s)))
            .filter(|(_, service)| match service.when {
                When::Always => true,
                When::Preset(name) => self.contains(name),
                When::KeyPrefix(key, prefix) => keys
                    .get_owned(key)
                    .map(|v| v.text.trim().to_string())
                    .or_else(|| presets::key_default(key).map(str::to_string))
                    .is_some_and(|v| v.starts_with(prefix)),
            })
            .collect()
    }
}

/// The project's own services (`STACK_SERVICES`), in order, with the line declaring them.
pub(super) struct Declared {
    pub names: Vec<String>,
    pub spans: BTreeMap<String, Option<Span>>,
}

impl Declared {
    /// Read `STACK_SERVICES`, dropping (and reporting) bad, repeated or reserved names.
    pub(super) fn read(
        keys: &Keys,
        enabled: &EnabledPresets,
        proxy: ProxyKind,
        errors: &mut Errors,
    ) -> Declared {
        let mut declared = Declared {
            names: Vec::new(),
            spans: BTreeMap::new(),
        };
        let Some(value) = keys.get("STACK_SERVICES") else {
            return declared;
        };
        for name in value.list() {
            let item = Value {
                key: "STACK_SERVICES",
                text: &name,
                span: value.span,
                secret: value.secret,
            };
            if errors.take(item.name("service name", "-")).is_none() {
                continue;
            }
            if let Some(error) = declared.refuse(&name, enabled, proxy) {
                errors.push(error.with_span(value.span.cloned()));
                continue;
            }
            declared.spans.insert(name.clone(), value.span.cloned());
            declared.names.push(name);
        }
        declared
    }

    /// Why `name` cannot be declared: listed twice, or taken by a preset or the proxy.
    fn refuse(&self, name: &str, enabled: &EnabledPresets, proxy: ProxyKind) -> Option<Diagnostic> {
        if self.names.iter().any(|n| n == name) {
            return Some(Diagnostic::new(format!(
                "service `{name}` is listed twice in `STACK_SERVICES`"
            )));
        }
        // A preset's names are reserved only while it is enabled: a project's own
        // `redis` or `postgres` (as imported Compose files name theirs) keeps its name.
        let reserved = PRESETS.iter().find(|p| {
            enabled.contains(p.name)
                && (p.service() == name || p.services.iter().any(|s| s.name == name))
        });
        if let Some(preset) = reserved {
            return Some(
                Diagnostic::new(format!(
                    "service name `{name}` is reserved for the `{}` preset",
                    preset.name
                ))
                .hint(format!(
                    "set `{}=true` instead, or pick another name",
                    presets::enabled_key(preset)
                )),
            );
        }
        if name == "certbot" && proxy == ProxyKind::Nginx {
            return Some(
                Diagnostic::new(
                    "service name `certbot` is reserved while `STACK_PROXY=nginx` (stack runs certbot with `STACK_TLS=auto`)",
                )
                .hint("pick another name"),
            );
        }
        if name == "proxy" && proxy != ProxyKind::None {
            return Some(
                Diagnostic::new("service name `proxy` is reserved for the proxy stack runs")
                    .hint("pick another name, or set `STACK_PROXY=none`"),
            );
        }
        None
    }
}

/// The service names `SERVICE_` keys may use.
pub(super) struct ServiceNames {
    /// Services that exist here (declared, and the enabled presets'): what hints list.
    pub running: Vec<String>,
    /// Those, plus every preset's main service, whose keys are accepted while it is off.
    pub all: Vec<String>,
}

impl ServiceNames {
    /// The names of the declared services and the presets' services.
    pub fn new(declared: &Declared, enabled: &EnabledPresets) -> ServiceNames {
        let mut running = declared.names.clone();
        for preset in &enabled.list {
            running.extend(preset.services.iter().map(|s| s.name.to_string()));
        }
        let mut all = running.clone();
        all.extend(PRESETS.iter().map(|p| p.service().to_string()));
        all.sort();
        all.dedup();
        ServiceNames { running, all }
    }
}
