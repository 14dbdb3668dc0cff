//! The steps of one deploy, worked out before anything changes ([`plan`], pure): `stack
//! deploy --dry-run` prints them and stops; the real deploy records each step as it
//! performs it in a [`Journal`] (its `--json` output lists them as `"steps"`), and the
//! two lists are the same (tests/deploy.rs compares them per scenario).

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use crate::engine::SwarmAction;
use crate::plan::Action;

/// One step of a deploy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Nothing changed: release `release` is current and every container runs.
    Unchanged { release: String },
    /// Pull a registry image the server lacks.
    Pull { service: String, image: String },
    /// Take the deploy lock (with the free-space check).
    Lock,
    /// Send a `BUILD` image the server lacks.
    Send { service: String, image: String },
    /// Upload the release's bundle and desired state.
    Upload,
    /// A container action: a release command, a create, a replace behind its health gate,
    /// a removal.
    Container { action: String },
    /// A swarm action: a release command, a service created, updated or removed.
    Swarm { action: String },
    /// Point `current` at the release.
    Switch,
    /// Install (or refresh) and start the systemd unit.
    Unit,
    /// A preview: route its hosts through the environment's proxy (written, reloaded).
    Route { hosts: Vec<String> },
    /// Record the outcome, prune old releases, free the lock.
    Finish,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Unchanged { release } => {
                write!(f, "nothing changed: release `{release}` is current")
            }
            Step::Pull { service, image } => write!(f, "{service}: pull `{image}`"),
            Step::Lock => f.write_str("take the deploy lock"),
            Step::Send { service, image } => {
                write!(f, "{service}: build locally and send `{image}`")
            }
            Step::Upload => f.write_str("upload the release"),
            Step::Container { action } => f.write_str(action),
            Step::Swarm { action } => f.write_str(action),
            Step::Switch => f.write_str("point `current` at the release"),
            Step::Unit => f.write_str("install and start the systemd unit"),
            Step::Route { hosts } => write!(
                f,
                "route {} through the environment's proxy (reload)",
                hosts.join(", ")
            ),
            Step::Finish => f.write_str("record the deploy, prune old releases, free the lock"),
        }
    }
}

/// What a deploy's plan is made from: the desired state and what the server has.
pub struct Facts<'a> {
    /// A swarm deploy: the steps of its swarm plan ([`swarm`]).
    pub swarm: Option<Vec<Step>>,
    /// Services whose registry image the server lacks: (service, image).
    pub pull: Vec<(String, String)>,
    /// `BUILD` services whose image the server lacks: (service, image).
    pub send: Vec<(String, String)>,
    /// The container actions (compose; empty for swarm).
    pub actions: &'a [Action],
    /// A preview's hosts: no unit, a route through its environment's proxy instead.
    pub preview: Option<Vec<String>>,
}

/// The steps of a deploy that goes the long way, in the order they run.
pub fn plan(facts: &Facts) -> Vec<Step> {
    let pair = |(service, image): &(String, String)| (service.clone(), image.clone());
    let mut steps: Vec<Step> = facts
        .pull
        .iter()
        .map(|p| {
            let (service, image) = pair(p);
            Step::Pull { service, image }
        })
        .collect();
    steps.push(Step::Lock);
    steps.extend(facts.send.iter().map(|s| {
        let (service, image) = pair(s);
        Step::Send { service, image }
    }));
    steps.push(Step::Upload);
    if let Some(services) = &facts.swarm {
        steps.push(Step::Switch);
        steps.extend(services.iter().cloned());
    } else {
        steps.extend(facts.actions.iter().map(container));
        steps.push(Step::Switch);
        steps.push(match &facts.preview {
            Some(hosts) => Step::Route {
                hosts: hosts.clone(),
            },
            None => Step::Unit,
        });
    }
    steps.push(Step::Finish);
    steps
}

/// The steps of a rollback to a saved release, in the order they run: the lock,
/// `current` pointed back, the release's containers (compose: `actions`) or swarm
/// services (`swarm`), the unit (compose), the record.
pub fn rollback(actions: &[Action], swarm: Option<Vec<Step>>) -> Vec<Step> {
    let mut steps = vec![Step::Lock, Step::Switch];
    match swarm {
        Some(services) => steps.extend(services),
        None => {
            steps.extend(actions.iter().map(container));
            steps.push(Step::Unit);
        }
    }
    steps.push(Step::Finish);
    steps
}

/// The step of a container action.
pub fn container(action: &Action) -> Step {
    Step::Container {
        action: action.to_string(),
    }
}

/// The step of a swarm action.
pub fn swarm(action: &SwarmAction) -> Step {
    Step::Swarm {
        action: action.to_string(),
    }
}

/// The steps a deploy performed, in order; cloned handles record into the same list.
#[derive(Debug, Clone, Default)]
pub struct Journal(Rc<RefCell<Vec<Step>>>);

impl Journal {
    pub fn record(&self, step: Step) {
        self.0.borrow_mut().push(step);
    }

    pub fn steps(&self) -> Vec<Step> {
        self.0.borrow().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compose_plan_runs_in_order() {
        let facts = Facts {
            swarm: None,
            pull: vec![("db".into(), "postgres:16".into())],
            send: vec![("web".into(), "app:dev".into())],
            actions: &[],
            preview: None,
        };
        let steps = plan(&facts);
        assert_eq!(
            steps,
            vec![
                Step::Pull {
                    service: "db".into(),
                    image: "postgres:16".into()
                },
                Step::Lock,
                Step::Send {
                    service: "web".into(),
                    image: "app:dev".into()
                },
                Step::Upload,
                Step::Switch,
                Step::Unit,
                Step::Finish,
            ]
        );
        let json = serde_json::to_value(&steps[0]).unwrap();
        assert_eq!(json["step"], "pull");
        assert_eq!(
            steps[2].to_string(),
            "web: build locally and send `app:dev`"
        );
    }

    #[test]
    fn a_swarm_plan_switches_first_and_installs_no_unit() {
        let facts = Facts {
            swarm: Some(Vec::new()),
            pull: Vec::new(),
            send: Vec::new(),
            actions: &[],
            preview: None,
        };
        assert_eq!(
            plan(&facts),
            vec![Step::Lock, Step::Upload, Step::Switch, Step::Finish]
        );
    }

    #[test]
    fn a_rollback_switches_before_its_containers() {
        let action = Action::Start {
            service: "web".into(),
            container: "p-web-1".into(),
        };
        let steps = rollback(std::slice::from_ref(&action), None);
        assert_eq!(
            steps,
            vec![
                Step::Lock,
                Step::Switch,
                container(&action),
                Step::Unit,
                Step::Finish
            ]
        );
        assert_eq!(
            rollback(&[], Some(Vec::new())),
            vec![Step::Lock, Step::Switch, Step::Finish]
        );
    }

    #[test]
    fn the_journal_keeps_the_order() {
        let journal = Journal::default();
        let other = journal.clone();
        journal.record(Step::Lock);
        other.record(Step::Upload);
        assert_eq!(journal.steps(), vec![Step::Lock, Step::Upload]);
    }
}
