//! One line of the agent's dead-letter file (`state_dir/rejected.jsonl`): an alert a
//! destination refused even on its own (a 400 for a malformed alert, a 413 for one too big
//! for the server's body limit), so it was taken out of the outbox and kept here instead of
//! being dropped silently. `monitorctl alerts --rejected` shows them.

use serde::{Deserialize, Serialize};

use crate::{HistoryRecord, Timestamp};

/// An alert a destination refused, in Mender's shape (the history record: `seq`, `check`
/// and the alert's fields), with who refused it, when and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectedRecord {
    /// The destination's outbox name (`backend`, `discord:<webhook id>`).
    pub destination: String,
    pub rejected_at: Timestamp,
    /// The destination's answer, shortened; never a token or a webhook secret.
    pub reason: String,
    /// Set when the alert was too big to keep whole: its log lines were cut.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shortened: bool,
    #[serde(flatten)]
    pub record: HistoryRecord,
}
