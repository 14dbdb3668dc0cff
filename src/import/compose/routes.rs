//! Routes from a Caddyfile beside the Compose file (or named with `--caddyfile`).

use std::collections::BTreeMap;

use super::yaml::Node;
use super::{caddyfile, Diagnostic, Finding, Import, Result};

impl Import<'_> {
    /// Routes from a Caddyfile beside the file (or named): service → (port, routes, strip).
    pub(super) fn read_caddyfile(
        &mut self,
        services: &[(String, Node)],
    ) -> Result<BTreeMap<String, caddyfile::Upstream>> {
        let (path, named) = match &self.options.caddyfile {
            Some(path) => (path.clone(), true),
            None => (self.dir.join("Caddyfile"), false),
        };
        let Some(text) = self.reader.read(&path)? else {
            if named {
                return Err(Diagnostic::new(format!("`{}` does not exist", path.display())).into());
            }
            return Ok(BTreeMap::new());
        };
        // A Caddyfile that a service of the file mounts belongs to that service.
        if !named && mounts_caddyfile(services) {
            return Ok(BTreeMap::new());
        }
        let parsed = caddyfile::parse(&text);
        let shown = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for skipped in &parsed.skipped {
            self.findings.push(Finding {
                service: None,
                key: format!("{shown}:{}", skipped.line),
                line: Some(skipped.line),
                reason: skipped.reason.clone(),
                not_carried: true,
            });
        }
        self.tls_email = parsed.email.clone();
        let mut out: BTreeMap<String, caddyfile::Upstream> = BTreeMap::new();
        for route in parsed.routes {
            let Some(service) = services
                .iter()
                .map(|(name, _)| name)
                .find(|name| **name == route.service)
            else {
                self.findings.push(Finding {
                    service: None,
                    key: format!("{shown}:{}", route.line),
                    line: Some(route.line),
                    reason: format!(
                        "`reverse_proxy {}:{}` names no service of the Compose file",
                        route.service, route.port
                    ),
                    not_carried: true,
                });
                continue;
            };
            let entry = out.entry(service.clone()).or_insert(caddyfile::Upstream {
                port: route.port,
                routes: Vec::new(),
                strip: route.strip,
            });
            if entry.port != route.port || entry.strip != route.strip {
                self.findings.push(Finding {
                    service: Some(service.clone()),
                    key: format!("{shown}:{}", route.line),
                    line: Some(route.line),
                    reason: "a second port or strip setting for the same service; stack routes \
                             one port per service"
                        .into(),
                    not_carried: true,
                });
                continue;
            }
            entry.routes.push(route.route);
        }
        if !out.is_empty() {
            self.uses_proxy = true;
        }
        Ok(out)
    }
}

fn mounts_caddyfile(services: &[(String, Node)]) -> bool {
    services
        .iter()
        .any(|(_, service)| match service.get("volumes") {
            Some(Node::Seq(items)) => items.iter().any(|item| {
                let source = match item {
                    Node::Map(_) => item.get("source").and_then(Node::scalar),
                    other => other.scalar(),
                };
                source.is_some_and(|s| s.contains("Caddyfile"))
            }),
            _ => false,
        })
}
