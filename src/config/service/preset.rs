//! A preset service's defaults: attributes and container variables with their
//! `{KEY}` placeholders filled in.

use std::collections::BTreeMap;

use super::{Attr, AttrMap, Context};
use crate::config::model::{secret_file_var, EnvValue, SecretFile, Service};
use crate::config::presets::{self, EnvSource, PresetService};
use crate::config::values::Value;
use crate::error::Span;

/// The preset's default attributes, as attributes not set by the project.
pub(super) fn default_attrs<'a>(defaults: &'a [PresetAttr<'a>]) -> AttrMap<'a> {
    defaults
        .iter()
        .map(|default| {
            let value = Value {
                key: &default.key,
                text: &default.text,
                span: default.span,
                secret: default.secret,
            };
            let attr = Attr {
                value,
                from_project: false,
            };
            (default.attr, attr)
        })
        .collect()
}

/// The preset's container variables, placeholders filled in; empty optional ones are left out.
pub(super) fn preset_env(context: &Context, service: &'static PresetService) -> super::Variables {
    let mut env = BTreeMap::new();
    for (var, source) in service.env {
        let (value, secret) = match source {
            EnvSource::Fixed(text) => (text.to_string(), false),
            EnvSource::Key(key) => {
                let secret = context.keys.secret_of(key).is_some();
                let value = preset_key_value(context, key, Use::Container);
                if value.is_empty() && !secret {
                    continue;
                }
                (value, secret)
            }
            EnvSource::Template(template) => {
                let (value, refs) = fill(context, template, Use::Container);
                let secret = refs.iter().any(|r| context.keys.secret_of(r).is_some());
                (value, secret)
            }
            EnvSource::Secret(template) => (fill(context, template, Use::Container).0, true),
        };
        env.insert(var.to_string(), (value, secret));
    }
    env
}

/// A preset variable that a program cannot read from its environment, holding a secret,
/// becomes a secret file ([`presets::SECRETS_AS_FILES`]); the renderer names the file.
pub(super) fn secrets_as_files(service: &mut Service) {
    for (name, var, key, target) in presets::SECRETS_AS_FILES {
        if service.name != *name {
            continue;
        }
        let Some(EnvValue::Secret(env_var)) = service.env.get(*var).cloned() else {
            continue;
        };
        service.env.remove(*var);
        let value = service.secret_values.0.remove(&env_var).unwrap_or_default();
        service.secret_values.0.insert(secret_file_var(key), value);
        service.secret_files.push(SecretFile {
            target: target.to_string(),
            key: key.to_string(),
            mode: 0,
        });
    }
}

/// A preset's default attribute, its placeholders filled in.
pub(super) struct PresetAttr<'a> {
    attr: &'static str,
    /// `SERVICE_<NAME>_<ATTR>`, or the preset key when the default is that key alone
    /// (`{MONITORING_GRAFANA_ROUTE}`), so an error points at the line that set it.
    key: String,
    text: String,
    span: Option<&'a Span>,
    /// Built from a secret (refused later, as every rendered secret is); never quoted.
    secret: bool,
}

/// The preset's default attributes with `{KEY}` placeholders filled in; those that come
/// out empty are left out.
pub(super) fn preset_attrs<'a>(
    context: &Context<'a>,
    service: &'static PresetService,
    prefix: &str,
) -> Vec<PresetAttr<'a>> {
    service
        .attrs
        .iter()
        .filter_map(|(attr, template)| {
            let (text, refs) = fill(context, template, Use::Rendered);
            let secret = refs.iter().any(|r| context.keys.secret_of(r).is_some());
            if text.trim().is_empty() {
                return None;
            }
            let whole = template.strip_prefix('{').and_then(|t| t.strip_suffix('}'));
            let set = whole.and_then(|key| {
                context
                    .keys
                    .resolved
                    .settings
                    .get_key_value(key)
                    .filter(|_| refs.len() == 1)
            });
            Some(match set {
                Some((key, setting)) => PresetAttr {
                    attr,
                    key: key.clone(),
                    text,
                    span: Some(&setting.span),
                    secret,
                },
                None => PresetAttr {
                    attr,
                    key: format!("SERVICE_{prefix}_{attr}"),
                    text,
                    span: None,
                    secret,
                },
            })
        })
        .collect()
}

/// What a preset value is read for.
#[derive(Clone, Copy, PartialEq)]
enum Use {
    /// A container variable: a secret goes to the bundle's `.env`.
    Container,
    /// An attribute, which ends up in a rendered file: recorded, so a secret is refused.
    Rendered,
}

/// `template` with every `{NAME}` replaced, and the names it used.
fn fill(context: &Context, template: &str, usage: Use) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut refs = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let Some(end) = rest[start..].find('}') else {
            break;
        };
        out.push_str(&rest[..start]);
        let key = &rest[start + 1..start + end];
        out.push_str(&placeholder(context, key, usage));
        refs.push(key.to_string());
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    (out, refs)
}

/// A placeholder's value: a computed one, else a preset key's.
fn placeholder(context: &Context, name: &str, usage: Use) -> String {
    let value = |key: &str| preset_key_value(context, key, usage);
    match name {
        "STACK_DOMAIN" => context.domain.to_string(),
        // Where the backup job writes its dumps: the target directory, or a volume the
        // S3 sidecar uploads from.
        "BACKUP_STORE" => {
            let target = value("BACKUP_TARGET");
            if target.starts_with("s3://") {
                "backup-data".into()
            } else {
                target
            }
        }
        // The backup job runs the postgres service's image, so `pg_dump` and the
        // throwaway verification server match the database.
        "POSTGRES_IMAGE" => match context.keys.get_owned("SERVICE_POSTGRES_IMAGE") {
            Some(image) if !image.text.trim().is_empty() => image.text.trim().to_string(),
            _ => presets::PRESETS
                .iter()
                .find(|p| p.name == "POSTGRES")
                .and_then(|p| p.services[0].attrs.iter().find(|(a, _)| *a == "IMAGE"))
                .map(|(_, template)| fill(context, template, usage).0)
                .unwrap_or_default(),
        },
        // Each volume of `BACKUP_VOLUMES`, read-only where the script archives it from.
        "BACKUP_VOLUME_MOUNTS" => presets::backup_volumes(&value("BACKUP_VOLUMES"))
            .iter()
            .map(|volume| format!(",{volume}:{}{volume}:ro", presets::BACKUP_VOLUMES_DIR))
            .collect(),
        "BACKUP_CRON" => presets::cron_schedule(&value("BACKUP_SCHEDULE")),
        "BACKUP_VERIFY_CRON" => presets::cron_schedule(&value("BACKUP_VERIFY_SCHEDULE")),
        "BACKUP_S3_PATH" => {
            let target = value("BACKUP_TARGET");
            match presets::s3_target(&target) {
                Some((bucket, "")) => bucket.to_string(),
                Some((bucket, prefix)) => format!("{bucket}/{prefix}"),
                None => String::new(),
            }
        }
        // Loki deletes by whole days of index.
        "LOKI_RETENTION" => {
            let hours = presets::retention_hours(&value("MONITORING_RETENTION")).unwrap_or(360);
            format!("{}h", hours.div_ceil(24) * 24)
        }
        key => value(key),
    }
}

/// A preset key's value: the project's, else the preset's default.
fn preset_key_value(context: &Context, key: &str, usage: Use) -> String {
    if usage == Use::Rendered {
        context.keys.mark_read(key);
    }
    if let Some(value) = context.keys.for_container(key) {
        return value.text.to_string();
    }
    match presets::key_default(key).unwrap_or("") {
        "{PROJECT_IDENT}" => context.project.replace('-', "_"),
        "{MEILI_ENV}" => if context.env == "prod" {
            "production"
        } else {
            "development"
        }
        .into(),
        other => other.to_string(),
    }
}
