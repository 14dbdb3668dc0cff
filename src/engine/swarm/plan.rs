//! A swarm deploy's plan, worked out from the stack's services before anything changes
//! (pure): in dependency order, each service's release command when it changes, then its
//! creation or update (an unchanged one has no action); then the removal of the stack's
//! services no longer in the project. [`super::Engine::converge_swarm`] applies it.

use std::fmt;

use super::service::spec_digest;
use super::{service_name, StackService};
use crate::model::Desired;

/// One step of a swarm deploy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum SwarmAction {
    /// Run the service's `RELEASE` command before its new version rolls out.
    Release {
        service: String,
    },
    Create {
        service: String,
        name: String,
    },
    /// Update the swarm service at spec `version` (swarm rolls it).
    Update {
        service: String,
        name: String,
        version: u64,
    },
    /// Remove a service of the stack that the project no longer has.
    Remove {
        name: String,
    },
}

impl fmt::Display for SwarmAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SwarmAction::Release { service } => write!(f, "{service}: run release command"),
            SwarmAction::Create { service, name } => {
                write!(f, "{service}: create swarm service `{name}`")
            }
            SwarmAction::Update { service, name, .. } => {
                write!(f, "{service}: update swarm service `{name}`")
            }
            SwarmAction::Remove { name } => {
                write!(
                    f,
                    "remove swarm service `{name}` (no longer in the project)"
                )
            }
        }
    }
}

impl SwarmAction {
    /// The project's service the action is about (none for a removal).
    pub fn service(&self) -> Option<&str> {
        match self {
            SwarmAction::Release { service }
            | SwarmAction::Create { service, .. }
            | SwarmAction::Update { service, .. } => Some(service),
            SwarmAction::Remove { .. } => None,
        }
    }
}

/// The actions that take the stack from `existing` to `desired`; `run_releases`: run the
/// release commands of changed services (not when going back to a release).
pub(super) fn plan(
    desired: &Desired,
    existing: &[StackService],
    run_releases: bool,
) -> Vec<SwarmAction> {
    let mut actions = Vec::new();
    for service in desired.levels().into_iter().flatten() {
        let name = service_name(&desired.project, &service.name);
        let found = existing.iter().find(|(n, _, _)| *n == name);
        let digest = spec_digest(desired, service);
        let unchanged =
            found.is_some_and(|(_, _, found)| found.as_deref() == Some(digest.as_str()));
        if unchanged {
            continue;
        }
        let service_ = service.name.clone();
        if run_releases && service.release.is_some() {
            actions.push(SwarmAction::Release {
                service: service_.clone(),
            });
        }
        actions.push(match found {
            Some((_, version, _)) => SwarmAction::Update {
                service: service_,
                name,
                version: *version,
            },
            None => SwarmAction::Create {
                service: service_,
                name,
            },
        });
    }
    for (name, _, _) in existing {
        let wanted = desired
            .services
            .iter()
            .any(|s| service_name(&desired.project, &s.name) == *name);
        if !wanted {
            actions.push(SwarmAction::Remove { name: name.clone() });
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired() -> Desired {
        let loaded = crate::config::tests::load_text(
            "STACK_PROJECT=shop\nSTACK_PROXY=none\nSTACK_TARGET=swarm\nSTACK_SERVICES=db,api\n\
             SERVICE_DB_IMAGE=postgres:16\nSERVICE_API_IMAGE=api:1\nSERVICE_API_DEPENDS_ON=db\n\
             SERVICE_API_RELEASE=migrate\n",
            "staging",
        )
        .unwrap();
        crate::model::desired(&loaded.config, &Default::default())
    }

    #[test]
    fn a_first_deploy_creates_in_dependency_order_after_the_release() {
        let desired = desired();
        let text: Vec<String> = plan(&desired, &[], true)
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(
            text,
            [
                "db: create swarm service `shop_db`",
                "api: run release command",
                "api: create swarm service `shop_api`"
            ]
        );
        // Going back to a release: its release command ran already.
        assert_eq!(plan(&desired, &[], false).len(), 2);
    }

    #[test]
    fn only_changed_services_update_and_stale_ones_go() {
        let desired = desired();
        let db = desired.service("db").unwrap();
        let existing = vec![
            (
                "shop_db".to_string(),
                7,
                Some(super::super::service::spec_digest(&desired, db)),
            ),
            ("shop_api".to_string(), 9, Some("old".to_string())),
            ("shop_worker".to_string(), 3, None),
        ];
        let actions = plan(&desired, &existing, false);
        assert_eq!(
            actions,
            vec![
                SwarmAction::Update {
                    service: "api".into(),
                    name: "shop_api".into(),
                    version: 9
                },
                SwarmAction::Remove {
                    name: "shop_worker".into()
                },
            ]
        );
        assert_eq!(actions[1].service(), None);
    }
}
