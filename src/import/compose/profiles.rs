//! `profiles`: services of profiles that are not activated are left out, as
//! `docker compose up` leaves them; an activated one is imported as always running.

use super::documents::Loaded;
use super::yaml::Node;
use super::{Import, Result};

impl Loaded<'_> {
    /// Services in profiles that are not activated are left out (as `docker compose up`
    /// leaves them), each listed; `--profile NAME` activates one.
    pub(super) fn profiles(&mut self, doc: &mut Node, active: &[String]) {
        let Node::Map(top) = doc else { return };
        let Some((_, Node::Map(services))) = top.iter_mut().find(|(k, _)| k == "services") else {
            return;
        };
        let mut left_out = Vec::new();
        services.retain(|(name, service)| {
            let profiles = crate::import::merge::profiles(service);
            let on = profiles.is_empty() || active.iter().any(|a| a == "*" || profiles.contains(a));
            if !on {
                left_out.push((name.clone(), profiles));
            }
            on
        });
        for (name, profiles) in left_out {
            self.left_out.insert(name.clone(), profiles.clone());
            let list = profiles
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ");
            self.note(
                Some(&name),
                "profiles",
                format!(
                    "not imported: in profile(s) {list}, which are not activated (as `docker compose up` leaves it out); import it with `--profile {}`",
                    profiles.first().cloned().unwrap_or_default()
                ),
                true,
            );
        }
    }
}

impl Loaded<'_> {
    /// The profiles `docker compose up` activates: `--profile`, else `COMPOSE_PROFILES` of
    /// the `.env` beside the file (interpolated with it, as RAGFlow's
    /// `COMPOSE_PROFILES=${DOC_ENGINE},${DEVICE}`), else none, which Compose reads as the
    /// one empty profile `""` (PrivateGPT's `profiles: ["", ollama-cpu]` starts by default).
    pub(super) fn active_profiles(&mut self, cli: &[String]) -> Result<Vec<String>> {
        if !cli.is_empty() {
            return Ok(cli.to_vec());
        }
        let text = self
            .reader
            .read(&self.dir.join(".env"))?
            .unwrap_or_default();
        let dotenv = super::interpolation::dotenv_templates(&text);
        let Some((template, _)) = dotenv.get("COMPOSE_PROFILES") else {
            return Ok(vec![String::new()]);
        };
        let value = super::interpolation::interpolate_in(&dotenv, template, 0).unwrap_or_default();
        let active: Vec<String> = value.split(',').map(|p| p.trim().to_string()).collect();
        self.note(
            None,
            "COMPOSE_PROFILES",
            format!(
                "`.env` activates the profile(s) `{}`, as `docker compose up` reads it",
                active.join("`, `")
            ),
            false,
        );
        Ok(active)
    }
}

impl Import<'_> {
    /// A note that a service of an activated profile always runs.
    pub(super) fn profiles_note(&mut self, input: &str, node: &Node) {
        let profiles = crate::import::merge::profiles(node);
        if !profiles.is_empty() {
            self.note(
                Some(input),
                "profiles",
                format!(
                    "in profile(s) `{}`, activated: imported as a service that always runs",
                    profiles.join("`, `")
                ),
            );
        }
    }
}
