//! The agent's checkpoint: log offsets and alert state, written together so they always
//! agree, plus the alerts of the last emission so none is lost between the checkpoint and
//! the history.
//!
//! Recovery rule: a restart resumes every file where the checkpoint says and restores the
//! engine's state as it was at that moment, so lines after the checkpoint are read again
//! and produce exactly the alerts they produced before (none were recorded past it: an
//! emission writes the checkpoint before the history). Each position names the checks
//! it covers; a check on the file that it does not cover (added since) reads what the
//! file holds before it, alone, as it would have without the restart.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Context;
use monitor_engine::Snapshot;
use monitor_source::FilePosition;
use monitor_wire::{CheckId, HistoryRecord};
use serde::{Deserialize, Serialize};

pub const CHECKPOINT_FILE_NAME: &str = "checkpoint.json";
const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    pub positions: Positions,
    pub engine: Option<Snapshot>,
    /// Alerts of the latest emission; appended to the history at start if it lacks them.
    pub recent_alerts: Vec<HistoryRecord>,
    /// Written by versions before the engine kept these (read once at start, never
    /// written): `@command` sources reported down, whose OK was still owed.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub dead_commands: BTreeSet<String>,
    /// Likewise: why the state folder did not take writes, when a CRITICAL was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_dir_unwritable: Option<String>,
    /// The number of the next alert after a restart: past every alert the run that wrote
    /// this may have made (it reserves numbers ahead, since it delivers before writing).
    #[serde(default)]
    pub next_seq: u64,
}

impl Default for Checkpoint {
    fn default() -> Self {
        Checkpoint {
            version: VERSION,
            positions: BTreeMap::new(),
            engine: None,
            recent_alerts: Vec::new(),
            dead_commands: BTreeSet::new(),
            state_dir_unwritable: None,
            next_seq: 0,
        }
    }
}

/// Where each followed log file was read to.
pub type Positions = BTreeMap<PathBuf, SavedPosition>;

/// A log file's position and the checks it covers: they read every line before it, so a
/// restart resumes them there; any other check on the file is new to it and reads what
/// the file holds, as its `from` says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedPosition {
    #[serde(flatten)]
    pub position: FilePosition,
    /// `None` in checkpoints of versions that kept one position for every check: it covers
    /// every check on the file when the agent starts (they had all read to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_by: Option<BTreeSet<CheckId>>,
}

/// Read the checkpoint; a missing one is a first start, an unreadable one is set aside.
pub fn load(state_dir: &Path) -> anyhow::Result<Checkpoint> {
    let path = state_dir.join(CHECKPOINT_FILE_NAME);
    let Some(bytes) = monitor_store::read_optional(&path)? else {
        return Ok(Checkpoint::default());
    };
    match serde_json::from_slice::<Checkpoint>(&bytes) {
        Ok(checkpoint) if checkpoint.version == VERSION => Ok(checkpoint),
        Ok(checkpoint) => set_aside(
            &path,
            &format!(
                "it has version {}, this agent reads {VERSION}",
                checkpoint.version
            ),
        ),
        Err(error) => set_aside(&path, &error.to_string()),
    }
}

fn set_aside(path: &Path, why: &str) -> anyhow::Result<Checkpoint> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".unreadable");
    std::fs::rename(path, &aside)
        .with_context(|| format!("cannot move {} aside", path.display()))?;
    tracing::warn!(
        path = %path.display(),
        kept = %PathBuf::from(&aside).display(),
        "cannot read the checkpoint ({why}); starting without it: log checks read what their files hold again (their last log_first_read_limit bytes)"
    );
    Ok(Checkpoint::default())
}

/// Replace the checkpoint. Offsets alone can be written with
/// [`monitor_store::Durability::ContentOnly`]: losing that write in a power cut only means
/// reading lines again that made no alert.
pub fn save(
    state_dir: &Path,
    checkpoint: &Checkpoint,
    durability: monitor_store::Durability,
) -> anyhow::Result<()> {
    let bytes = serde_json::to_vec(checkpoint).context("cannot encode the checkpoint")?;
    monitor_store::write_atomically_as(&state_dir.join(CHECKPOINT_FILE_NAME), &bytes, durability)?;
    Ok(())
}
