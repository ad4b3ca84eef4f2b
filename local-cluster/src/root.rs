//! The cluster's root directory: created with everything the processes need before they
//! start, and wiped by `--fresh` only when it is recognisably one of ours.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::journal_config;
use crate::{ClusterPlan, Service};

/// A file in the root that marks it as a local-cluster root; `--fresh` checks for it.
pub const ROOT_MARKER: &str = ".local-cluster";

/// Makes `root` and `bin_dir` absolute (children run in their own directories) and
/// creates the log and data directories, the root marker and the journal config.
pub fn prepare(mut plan: ClusterPlan) -> Result<ClusterPlan> {
    plan.root = absolute(&plan.root)?;
    plan.bin_dir = absolute(&plan.bin_dir)?;
    mkdir(&plan.root.join("logs"))?;
    for service in Service::ALL {
        for node in plan.nodes(service) {
            mkdir(&plan.data_dir(service, node.node_id))?;
        }
    }
    let marker = plan.root.join(ROOT_MARKER);
    std::fs::write(
        &marker,
        "created by local-cluster; `--fresh` wipes this directory\n",
    )
    .map_err(Error::io(format!("writing {}", marker.display())))?;
    if !plan.journal.is_empty() {
        journal_config::write(&plan)?;
    }
    Ok(plan)
}

/// Removes `root` and everything in it, if it is missing, empty, or has the marker.
/// Anything else is refused: `--data-dir ~ --fresh` must not delete a home directory.
pub fn wipe(root: &Path) -> Result<()> {
    let mut entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(format!("reading {}", root.display()))(e)),
    };
    if entries.next().is_some() && !root.join(ROOT_MARKER).is_file() {
        return Err(Error::NotOurs {
            path: root.to_path_buf(),
            marker: ROOT_MARKER,
        });
    }
    std::fs::remove_dir_all(root).map_err(Error::io(format!("removing {}", root.display())))
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(Error::io(format!("resolving {}", path.display())))
}

fn mkdir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(Error::io(format!("creating {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_creates_the_layout_and_wipe_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("cluster");
        let plan = prepare(ClusterPlan::local_default(&root)).unwrap();
        assert!(plan.root.is_absolute() && plan.bin_dir.is_absolute());
        for p in [
            "logs",
            "placement-center-1",
            "journal-server-3",
            "mqtt-broker-2",
            ROOT_MARKER,
        ] {
            assert!(root.join(p).exists(), "{p}");
        }
        let config = std::fs::read_to_string(root.join("journal-cluster.toml")).unwrap();
        assert!(config.contains("mqtt-messages"), "{config}");
        wipe(&root).unwrap();
        assert!(!root.exists());
        wipe(&root).unwrap(); // missing: nothing to do
    }

    #[test]
    fn wipe_refuses_a_foreign_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("precious.txt"), "keep me").unwrap();
        let err = wipe(dir.path()).unwrap_err();
        assert!(matches!(err, Error::NotOurs { .. }), "{err}");
        assert!(dir.path().join("precious.txt").exists());
    }
}
