//! The fleet's rules, once, over the [`Store`](crate::storage::Store): who may report and
//! log in, what a device's status may become and what it shows, mute, channels, users and
//! tokens. The API, the dashboard and the admin commands parse their input, call a
//! [`Fleet`] method and render its answer; none of them decides anything itself.
//!
//! Every rule fails with one [`FleetError`], which each surface maps in one place: the
//! API's `{"error": …}` answer (`api::ApiError`), the dashboard's error page
//! (`dashboard::PageError`) and the command line's message (`main.rs`).

mod admission;
mod devices;
mod error;
mod inventory;
mod notifications;
mod reports;
mod service;
mod sessions;
mod silence;

pub use admission::{Admission, PendingLimits};
pub use devices::{count_by_status, parse_status, DeviceHealth, NEVER_SEEN};
pub use error::{Entity, FleetError};
pub use inventory::{AttributeFilter, DeviceInventory, ScopedAttribute};
pub use reports::InventoryAttribute;
pub use service::Fleet;
pub use sessions::{TokenMaker, MAX_TOKEN_LIFETIME, SESSION_LIFETIME};
pub use silence::{DEFAULT_SILENT_AFTER, MAX_HEARTBEAT_INTERVAL};
