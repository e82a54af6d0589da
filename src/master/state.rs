//! The run's state file `<run dir>/run.json`: which node ran where, its process id and how it
//! ended, so that a detached run can be attached to, stopped and collected later.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::nodes::{self, NodeHost};
use crate::words::{serde_words, words};

/// File name of the state file in a run directory.
pub const FILE_NAME: &str = "run.json";

/// A run as the master left it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunState {
    /// Run name (`-n`).
    pub name: String,
    /// Directory of the run below the node workspace (`<name>/<stamp>`).
    pub run_id: String,
    /// Test name.
    pub test: String,
    /// `--ssh-config` used.
    pub ssh_config: Option<PathBuf>,
    /// `--accept-new-host-keys` used.
    pub accept_new_host_keys: bool,
    /// When the nodes were told to start, Unix ms (0: never started).
    pub started_unix_ms: u64,
    /// The instant the nodes were told to start at, Unix ms (`None`: never started, or a state
    /// file of before).
    #[serde(default)]
    pub planned_start_unix_ms: Option<u64>,
    /// When the run must be over at the latest, Unix ms.
    pub deadline_unix_ms: u64,
    /// True once the master detached from the running nodes.
    pub detached: bool,
    /// Spread of the nodes' first users, ms (from their results' start times).
    pub start_skew_ms: Option<f64>,
    /// Spread of the arrival of the nodes' first cycle events at the master, ms.
    pub observed_skew_ms: Option<f64>,
    /// The test's step names, by step number (for `--export` after `--attach`).
    #[serde(default)]
    pub steps: Vec<String>,
    /// Every second of the cluster before this one was settled, shown and exported when the
    /// master left: `--attach` starts after it, so that nothing is exported twice.
    #[serde(default)]
    pub live_through: u32,
    pub nodes: Vec<NodeState>,
}

/// One node of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NodeState {
    pub number: u32,
    /// Host as written in a nodes file (`local`, `user@host:port`).
    pub host: String,
    /// Node directory on the host.
    pub dir: String,
    /// bench-node's process id on the host, once known.
    pub pid: Option<u32>,
    pub status: NodeStatus,
    /// When its first user started, Unix ms, as its collected result says.
    #[serde(default)]
    pub started_unix_ms: Option<u64>,
    /// Why it failed or is missing.
    pub reason: Option<String>,
}

words! {
    /// How a node of a run stands in the state file (the coordinator's finer states map to
    /// these in one place: `From<State>` in [`super::coordinator`]).
    #[derive(Default)]
    pub enum NodeStatus {
        /// In the run, and not known to have ended (a detached run's nodes, until attached).
        #[default]
        Running => "running",
        /// Ended with its result written.
        Done => "done",
        /// Died, went silent, was killed, or failed to deploy or start.
        Failed => "failed",
        /// Not ready in time: left out of the run.
        Missing => "missing",
    }
}
serde_words!(NodeStatus);

impl NodeState {
    /// The host, parsed back.
    pub fn node_host(&self) -> Option<NodeHost> {
        nodes::parse(&self.host, Path::new(FILE_NAME))
            .ok()
            .and_then(|n| n.into_iter().next())
            .map(|n| n.host)
    }
}

/// A state file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read {}: {source} (is it a run directory of bench-master?)", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl RunState {
    /// Reads `<run_dir>/run.json`.
    pub fn load(run_dir: &Path) -> Result<RunState, StateError> {
        let path = run_dir.join(FILE_NAME);
        let text = std::fs::read_to_string(&path).map_err(|source| StateError::Read {
            path: path.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| StateError::Parse { path, source })
    }

    /// Writes `<run_dir>/run.json` (replaced atomically).
    pub fn save(&self, run_dir: &Path) -> Result<(), StateError> {
        let path = run_dir.join(FILE_NAME);
        let tmp = run_dir.join(format!("{FILE_NAME}.part"));
        let text = serde_json::to_string_pretty(self).expect("state serialises");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|source| StateError::Write { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_a_state_file_of_before_still_reads() {
        crate::words::assert_round_trip(NodeStatus::ALL);
        crate::words::assert_round_trip(crate::master::coordinator::State::ALL);
        let dir = tempfile::tempdir().unwrap();
        let node = |status: &str| {
            format!(
                r#"{{"number":0,"host":"local","dir":"/tmp/n0","pid":7,"status":"{status}","reason":null}}"#
            )
        };
        let file = |status: &str| {
            format!(
                r#"{{"name":"n","run_id":"n/1","test":"t","ssh_config":null,
                "accept_new_host_keys":false,"started_unix_ms":1,"deadline_unix_ms":2,
                "detached":true,"start_skew_ms":null,"observed_skew_ms":null,"nodes":[{}]}}"#,
                node(status)
            )
        };
        for &status in NodeStatus::ALL {
            std::fs::write(dir.path().join(FILE_NAME), file(status.as_str())).unwrap();
            let state = RunState::load(dir.path()).unwrap();
            assert_eq!(state.nodes[0].status, status);
            state.save(dir.path()).unwrap();
            assert_eq!(RunState::load(dir.path()).unwrap().nodes[0].status, status);
        }
        std::fs::write(dir.path().join(FILE_NAME), file("zombie")).unwrap();
        let e = RunState::load(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("run.json") && e.contains("\"zombie\"") && e.contains("one of: running"),
            "{e}"
        );
    }
}
