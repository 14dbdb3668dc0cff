//! The services of an nself project beyond its core: custom services (`CS_N`) and
//! frontend apps (`FRONTEND_APP_N_*`), and the core's Hasura and Auth.

use std::collections::BTreeMap;

use super::super::{project_path, service_name};
use super::Import;
use crate::project::writer;

/// The fields of one numbered service (`CS_N_*`, `FRONTEND_APP_N_*`): value and line.
pub(super) type Fields = BTreeMap<String, (String, usize)>;

impl Import<'_> {
    /// `CS_N=name:template[:port][:route]` and its `CS_N_*` overrides.
    pub(super) fn custom(
        &mut self,
        file: &str,
        n: u32,
        fields: &Fields,
    ) -> Option<(String, Vec<String>)> {
        let line = fields.values().map(|(_, l)| *l).min().unwrap_or(1);
        let short: Vec<String> = fields
            .get("")
            .map(|(v, _)| v.split(':').map(str::to_string).collect())
            .unwrap_or_default();
        let field = |name: &str, at: usize| -> Option<String> {
            fields
                .get(name)
                .map(|(v, _)| v.clone())
                .or_else(|| short.get(at).cloned())
                .filter(|v| !v.is_empty())
        };
        let (input, name) = self.custom_name(file, n, line, field("NAME", 0))?;
        let mut attrs = Vec::new();
        match field("IMAGE", usize::MAX) {
            Some(image) => attrs.push(format!("IMAGE={}", writer::template(&image))),
            None => {
                let folder = self.source.join("services").join(&input);
                attrs.push(format!(
                    "BUILD={}",
                    writer::template(&project_path(self.project_dir, &folder))
                ));
                if !self
                    .reader
                    .folders(&self.source.join("services"))
                    .contains(&input)
                {
                    self.note(file, line, format!("`CS_{n}`: `services/{input}` does not exist yet (nself generates it from template `{}`); `BUILD` points there", field("TEMPLATE", 1).unwrap_or_default()));
                }
            }
        }
        if let Some(port) = field("PORT", 2) {
            attrs.push(format!("PORT={port}"));
            if let Some(route) = field("ROUTE", 3) {
                attrs.push(format!(
                    "ROUTE={}.${{STACK_DOMAIN}}",
                    writer::template(&route)
                ));
            }
        }
        attrs.push("DEPENDS_ON=postgres".into());
        attrs.push("ENV_DATABASE_URL=${DATABASE_URL}".into());
        attrs.push("ENV_HASURA_GRAPHQL_ADMIN_SECRET=${HASURA_GRAPHQL_ADMIN_SECRET}".into());
        for key in fields.keys() {
            if !["", "NAME", "TEMPLATE", "PORT", "ROUTE", "IMAGE"].contains(&key.as_str()) {
                self.finding(file, fields[key].1, format!("`CS_{n}_{key}`: not carried"));
            }
        }
        Some((name, attrs))
    }

    /// The service name of `CS_N` and the name as nself gave it (its folder's), or
    /// `None` with a finding when it has none, is no service name or is taken.
    fn custom_name(
        &mut self,
        file: &str,
        n: u32,
        line: usize,
        input: Option<String>,
    ) -> Option<(String, String)> {
        let Some(input) = input else {
            self.finding(
                file,
                line,
                format!("`CS_{n}`: a custom service without a name"),
            );
            return None;
        };
        let Some(name) = service_name(&input) else {
            self.finding(
                file,
                line,
                format!("`CS_{n}`: `{input}` is not a service name"),
            );
            return None;
        };
        let preset = crate::config::presets::PRESETS
            .iter()
            .any(|p| p.service() == name);
        if preset
            || super::super::is_reserved_service(&name, true)
            || ["hasura", "auth"].contains(&name.as_str())
        {
            self.finding(file, line, format!("`CS_{n}`: the name `{name}` is taken"));
            return None;
        }
        Some((input, name))
    }

    /// `FRONTEND_APP_N_{NAME,PORT,ROUTE}`: a dev server on the host behind the proxy.
    pub(super) fn frontend(
        &mut self,
        file: &str,
        n: u32,
        fields: &Fields,
    ) -> Option<(String, Vec<String>)> {
        let line = fields.values().map(|(_, l)| *l).min().unwrap_or(1);
        let get = |key: &str| fields.get(key).map(|(v, _)| v.clone());
        let (Some(input), Some(port)) = (get("NAME"), get("PORT")) else {
            self.finding(
                file,
                line,
                format!("`FRONTEND_APP_{n}`: a frontend app needs `_NAME` and `_PORT`"),
            );
            return None;
        };
        let name = service_name(&input)?;
        let route = get("ROUTE").unwrap_or_else(|| input.clone());
        for key in fields.keys() {
            if !["NAME", "PORT", "ROUTE"].contains(&key.as_str()) {
                self.finding(
                    file,
                    fields[key].1,
                    format!("`FRONTEND_APP_{n}_{key}`: not carried"),
                );
            }
        }
        Some((
            name,
            vec![
                format!("UPSTREAM=localhost:{port}"),
                format!("ROUTE={}.${{STACK_DOMAIN}}", writer::template(&route)),
                "FRONTEND=true".into(),
            ],
        ))
    }
}

/// The core GraphQL engine, as nself runs it.
pub(super) fn hasura() -> Vec<String> {
    [
        "IMAGE=hasura/graphql-engine:${HASURA_VERSION:-v2.44.0}",
        "PORT=8080",
        "ROUTE=api.${STACK_DOMAIN}",
        "HEALTH=/healthz",
        "DEPENDS_ON=postgres",
        "ENV_HASURA_GRAPHQL_DATABASE_URL=${DATABASE_URL}",
        "ENV_HASURA_GRAPHQL_ADMIN_SECRET=${HASURA_GRAPHQL_ADMIN_SECRET}",
        "ENV_HASURA_GRAPHQL_JWT_SECRET=\"{\\\"type\\\":\\\"HS256\\\",\\\"key\\\":\\\"${HASURA_JWT_KEY}\\\"}\"",
        "ENV_HASURA_GRAPHQL_ENABLE_CONSOLE=${HASURA_GRAPHQL_ENABLE_CONSOLE:-true}",
    ]
    .map(str::to_string)
    .to_vec()
}

/// The core authentication service, as nself runs it.
pub(super) fn auth() -> Vec<String> {
    [
        "IMAGE=nhost/hasura-auth:${AUTH_VERSION:-0.36.1}",
        "PORT=4000",
        "ROUTE=auth.${STACK_DOMAIN}",
        "HEALTH=/healthz",
        "DEPENDS_ON=postgres,hasura",
        "ENV_HASURA_GRAPHQL_DATABASE_URL=${DATABASE_URL}",
        "ENV_HASURA_GRAPHQL_GRAPHQL_URL=http://hasura:8080/v1/graphql",
        "ENV_HASURA_GRAPHQL_ADMIN_SECRET=${HASURA_GRAPHQL_ADMIN_SECRET}",
    ]
    .map(str::to_string)
    .to_vec()
}
