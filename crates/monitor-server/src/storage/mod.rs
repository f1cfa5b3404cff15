//! Everything the server keeps, behind one type over two engines.
//!
//! [`Store`] speaks SQL that SQLite (3.35+) and PostgreSQL both accept, through sqlx's `Any`
//! driver; only the schema ([`migrations`]) is written twice. SQLite runs in WAL mode for a
//! single server; PostgreSQL lets several replicas share one database, so nothing that
//! matters lives only in a server's memory.
//!
//! Conventions that keep the two engines alike ([`sql`]): times are `BIGINT` milliseconds
//! since the Unix epoch, flags are `BIGINT` 0/1, JSON is `TEXT`. A write transaction starts
//! with a write, so SQLite takes its lock at once instead of failing to upgrade a read.
//!
//! One file per section, each adding its methods to [`Store`]: `devices`, `alerts`,
//! `recording` (the one write path of alerts), `users` (and their tokens), `settings`,
//! `notifications` (channels and the outbox), `silence` (heartbeats, and a device's
//! silence and return as alerts), `backup` (a copy of a SQLite database while serving).

mod alerts;
mod backup;
mod devices;
mod migrations;
mod notifications;
mod recording;
mod settings;
mod silence;
mod sql;
mod store;
mod users;

pub use alerts::{AlertQuery, LatestQuery, StoredAlert};
pub use backup::{BackupError, Overwrite};
pub use devices::{Device, DeviceDocument, DeviceStatus};
pub use notifications::{Channel, ClaimedNotification};
pub use recording::RecordedAlerts;
pub use silence::{SilentAfter, SilentDevice, SILENCE_SUBJECT_NAME, SILENCE_SUBJECT_TYPE};
pub use sql::{Engine, StorageError};
pub use store::Store;
pub use users::{EnrollmentToken, User, UserToken, UserTokenKind};
