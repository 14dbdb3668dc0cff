//! What an engine says about itself (version, API, image store) and who holds a
//! project name on it, for `stack doctor`. Our own types out; no bollard type leaks.

use std::collections::{BTreeSet, HashMap};

use bollard::query_parameters::ListContainersOptions;

use super::{labels, outside, Engine};
use crate::error::Result;

/// An engine's version and storage, as `docker version` and `docker info` report them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EngineInfo {
    pub version: String,
    /// The API version agreed with the engine.
    pub api_version: String,
    /// The storage driver (`overlay2`, `vfs`, `overlayfs` under containerd).
    pub driver: String,
    /// Images are kept by containerd's snapshotters instead of the classic image store.
    pub containerd_store: bool,
}

impl Engine {
    /// The engine's version, API version and image store.
    pub async fn info(&self) -> Result<EngineInfo> {
        let version = self
            .docker
            .version()
            .await
            .map_err(|e| outside("cannot read the engine's version", e))?;
        let info = self
            .docker
            .info()
            .await
            .map_err(|e| outside("cannot read the engine's information", e))?;
        let containerd_store = info.driver_status.iter().flatten().any(|pair| {
            pair.first().is_some_and(|key| key == "driver-type")
                && pair
                    .get(1)
                    .is_some_and(|value| value.contains("containerd"))
        });
        Ok(EngineInfo {
            version: version.version.unwrap_or_default(),
            api_version: self.docker.client_version().to_string(),
            driver: info.driver.unwrap_or_default(),
            containerd_store,
        })
    }

    /// The kernel of the engine's machine (`6.1.0-13-amd64`), as `docker info` reports it.
    pub async fn kernel_version(&self) -> Result<String> {
        let info = self
            .docker
            .info()
            .await
            .map_err(|e| outside("cannot read the engine's information", e))?;
        Ok(info.kernel_version.unwrap_or_default())
    }

    /// The working directories (`com.docker.compose.project.working_dir`) of every
    /// container labelled with the compose project name `project`, sorted; an empty
    /// string for a container without one.
    pub async fn project_dirs(&self, project: &str) -> Result<BTreeSet<String>> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{}={project}", labels::PROJECT)],
        )]);
        let list = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|e| outside("cannot list containers", e))?;
        Ok(list
            .into_iter()
            .map(|summary| {
                summary
                    .labels
                    .unwrap_or_default()
                    .get(labels::WORKING_DIR)
                    .cloned()
                    .unwrap_or_default()
            })
            .collect())
    }
}
