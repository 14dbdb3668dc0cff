//! The key catalogue: which keys exist, and which service and attribute a
//! `SERVICE_` key belongs to.

pub use super::catalogue::{attribute_names, global_names};
use crate::error::{nearest, Diagnostic, Span};

/// Keys of `environments/<env>/server.env` (SPEC §1.6).
pub const SERVER_KEYS: &[&str] = &[
    "SERVER_HOST",
    "SERVER_USER",
    "SERVER_PORT",
    "SERVER_PATH",
    "SERVER_SSH_KEY",
    "SERVER_DOCKER_SOCKET",
    "SERVER_FIREWALL",
    "SERVER_UNATTENDED_UPGRADES",
    "SERVER_NODES",
];

/// `order-api` → `ORDER_API`.
pub fn service_key_name(service: &str) -> String {
    service.to_ascii_uppercase().replace('-', "_")
}

/// The name under which the secret container variable `var` of `service` is kept in the
/// bundle's `.env` file. Not one-to-one (`a--b` + `C` and `a` + `B__C` both give
/// `A__B__C`), so the configuration refuses two variables that map to one name.
/// A name from the `ENV` list that is no identifier (`discovery.type`) is hex-encoded,
/// since Compose interpolates identifiers only.
pub fn secret_var(service: &str, var: &str) -> String {
    let prefix = service_key_name(service);
    let identifier = var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !var.starts_with(|c: char| c.is_ascii_digit());
    if identifier {
        format!("{prefix}__{var}")
    } else {
        let hex: String = var.bytes().map(|b| format!("{b:02x}")).collect();
        format!("{prefix}__ENV_{hex}")
    }
}

/// What a `SERVICE_` key configures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceAttr {
    Attr(&'static str),
    Env(String),
    /// `BUILD_ARG_<NAME>`: a build argument.
    BuildArg(String),
}

/// Declared services by key prefix (`ORDER_API` → `order-api`), for splitting keys.
pub struct ServiceIndex<'a> {
    by_prefix: std::collections::HashMap<String, &'a str>,
    /// What hints list as the declared services.
    declared: &'a [String],
}

impl<'a> ServiceIndex<'a> {
    /// Name the services hints should list (default: every name the index knows).
    pub fn with_declared(mut self, declared: &'a [String]) -> Self {
        self.declared = declared;
        self
    }

    pub fn new(names: &'a [String]) -> Self {
        let by_prefix = names
            .iter()
            .map(|n| (service_key_name(n), n.as_str()))
            .collect();
        ServiceIndex {
            by_prefix,
            declared: names,
        }
    }

    /// The longest declared service whose prefix starts `rest`, with the attribute after it.
    fn longest<'k>(&self, rest: &'k str) -> Option<(&'a str, String, &'k str)> {
        let cuts = rest.match_indices('_').map(|(i, _)| i).collect::<Vec<_>>();
        cuts.into_iter().rev().find_map(|cut| {
            let prefix = &rest[..cut];
            self.by_prefix
                .get(prefix)
                .map(|name| (*name, prefix.to_string(), &rest[cut + 1..]))
        })
    }
}

/// The attribute `attr` (what follows `SERVICE_<NAME>_`) names, if any.
fn service_attr(attr: &str) -> Option<ServiceAttr> {
    // `ENV_FILE` is the attribute; a variable named `FILE` goes in the `ENV` list.
    if attr == "ENV_FILE" {
        return Some(ServiceAttr::Attr("ENV_FILE"));
    }
    if let Some(var) = attr.strip_prefix("ENV_").filter(|v| !v.is_empty()) {
        return Some(ServiceAttr::Env(var.to_string()));
    }
    if let Some(arg) = attr.strip_prefix("BUILD_ARG_").filter(|a| !a.is_empty()) {
        return Some(ServiceAttr::BuildArg(arg.to_string()));
    }
    let known = attribute_names().find(|a| *a == attr)?;
    Some(ServiceAttr::Attr(known))
}

impl ServiceAttr {
    /// How a reading of a key is told to the user: `the attribute PORT`, `the variable X`.
    pub fn describe(&self) -> String {
        match self {
            ServiceAttr::Attr(attr) => format!("the attribute `{attr}`"),
            ServiceAttr::Env(var) => format!("the variable `{var}` (`ENV_{var}`)"),
            ServiceAttr::BuildArg(arg) => format!("the build argument `{arg}`"),
        }
    }
}

/// Split `SERVICE_<NAME>_<ATTR>` against the known services (longest name wins).
pub fn split_service_key(
    key: &str,
    services: &[String],
    span: Option<&Span>,
) -> Result<(String, ServiceAttr), Diagnostic> {
    ServiceIndex::new(services).split(key, span)
}

impl<'a> ServiceIndex<'a> {
    /// Split `SERVICE_<NAME>_<ATTR>`, or say why it names no known service attribute.
    pub fn split(
        &self,
        key: &str,
        span: Option<&Span>,
    ) -> Result<(String, ServiceAttr), Diagnostic> {
        self.parse(key).ok_or_else(|| self.unknown(key, span))
    }

    /// The service and attribute `key` sets, when it names known ones (cheap: no hints).
    pub fn parse(&self, key: &str) -> Option<(String, ServiceAttr)> {
        let rest = key.strip_prefix("SERVICE_").unwrap_or(key);
        let (service, _, attr) = self.longest(rest)?;
        Some((service.to_string(), service_attr(attr)?))
    }

    /// Every way `key` reads as `SERVICE_<NAME>_<ATTR>` of a known service, longest
    /// service name first (the reading [`ServiceIndex::parse`] takes). Two or more: the
    /// key is ambiguous (`SERVICE_WEB_ENV_PORT` with services `web` and `web-env`).
    pub fn readings(&self, key: &str) -> Vec<(&'a str, ServiceAttr)> {
        let Some(rest) = key.strip_prefix("SERVICE_") else {
            return Vec::new();
        };
        rest.match_indices('_')
            .map(|(i, _)| i)
            .rev()
            .filter_map(|cut| {
                let name = self.by_prefix.get(&rest[..cut])?;
                Some((*name, service_attr(&rest[cut + 1..])?))
            })
            .collect()
    }

    /// The error for a `SERVICE_` key [`ServiceIndex::parse`] rejects, with the nearest key.
    pub fn unknown(&self, key: &str, span: Option<&Span>) -> Diagnostic {
        let services = self.declared;
        let rest = key.strip_prefix("SERVICE_").unwrap_or(key);
        if let Some((service, prefix, attr)) = self.longest(rest) {
            let diagnostic = Diagnostic::new(format!(
                "unknown attribute `{attr}` in `{key}` (service `{service}`)"
            ))
            .with_span(span.cloned());
            // The key reads as something of a service whose name the longer one continues.
            if let Some((other, reading)) = self.readings(key).into_iter().next() {
                return diagnostic.hint(format!(
                    "it could be {} of service `{other}`, but `{service}` continues that name and wins; rename one of the two services",
                    reading.describe()
                ));
            }
            return match nearest(attr, attribute_names()) {
                Some(near) => diagnostic.hint(format!("did you mean `SERVICE_{prefix}_{near}`?")),
                None => diagnostic.hint(format!(
                    "service attributes are {}, ENV_<VAR> and BUILD_ARG_<NAME>",
                    attribute_names().collect::<Vec<_>>().join(", ")
                )),
            };
        }
        // No declared service matches: suggest the nearest full key.
        let mut candidates = Vec::new();
        for service in services {
            let prefix = service_key_name(service);
            for attr in attribute_names() {
                candidates.push(format!("SERVICE_{prefix}_{attr}"));
            }
            if let Some(pos) = rest.find("_ENV_") {
                candidates.push(format!("SERVICE_{prefix}{}", &rest[pos..]));
            }
        }
        let diagnostic =
            Diagnostic::new(format!("`{key}` does not belong to any declared service"))
                .with_span(span.cloned());
        let declared = if services.is_empty() {
            "no services are declared".to_string()
        } else {
            format!("declared services: {}", services.join(", "))
        };
        match nearest(key, candidates.iter().map(String::as_str)) {
            Some(near) => diagnostic.hint(format!("did you mean `{near}`? ({declared})")),
            None => diagnostic.hint(format!("add the service to `STACK_SERVICES` ({declared})")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn longest_service_wins() {
        let s = services(&["order", "order-api"]);
        assert_eq!(
            split_service_key("SERVICE_ORDER_API_PORT", &s, None).unwrap(),
            ("order-api".into(), ServiceAttr::Attr("PORT"))
        );
        assert_eq!(
            split_service_key("SERVICE_ORDER_PORT", &s, None).unwrap(),
            ("order".into(), ServiceAttr::Attr("PORT"))
        );
        assert_eq!(
            split_service_key("SERVICE_ORDER_ENV_DATABASE_URL", &s, None).unwrap(),
            ("order".into(), ServiceAttr::Env("DATABASE_URL".into()))
        );
    }

    #[test]
    fn suggestions() {
        let s = services(&["api"]);
        let e = split_service_key("SERVICE_API_PROTT", &s, None).unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("did you mean `SERVICE_API_PORT`?"));
        let e = split_service_key("SERVICE_APPI_PORT", &s, None).unwrap_err();
        assert!(e.hint.unwrap().contains("SERVICE_API_PORT"));
    }
}
