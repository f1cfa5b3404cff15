//! monitor-server's tests: the real binary over real HTTP, each run on SQLite and on a real
//! PostgreSQL (see `tests/support/postgres.rs`).

#[path = "../../../../tests/support/discord_standin.rs"]
mod discord_standin;
#[path = "../../../../tests/support/http_standin.rs"]
mod http_standin;
#[path = "../../../../tests/support/monitor_server.rs"]
mod monitor_server;
#[path = "../../../../tests/support/mosquitto.rs"]
mod mosquitto;
#[path = "../../../../tests/support/ntfy_standin.rs"]
mod ntfy_standin;
#[path = "../../../../tests/support/postgres.rs"]
mod postgres;
#[path = "../../../../tests/support/slack_standin.rs"]
mod slack_standin;
#[path = "../../../../tests/support/smtp_sink.rs"]
mod smtp_sink;
#[path = "../../../../tests/support/telegram_standin.rs"]
mod telegram_standin;
#[path = "../../../../tests/support/tls_certificates.rs"]
mod tls_certificates;
#[path = "../../../../tests/support/webhook_standin.rs"]
mod webhook_standin;

mod admission;
mod admission_limits;
mod api;
mod backup;
mod balancer;
mod browser;
mod cli;
mod dashboard;
mod device_api;
mod hook_channels;
mod hygiene;
mod inventory_api;
mod login;
mod management_api;
mod migration;
mod mqtt_channel;
mod notifications;
mod replicas;
mod revocation;
mod robustness;
mod secrets;
mod silence;
mod tls;

/// Runs an async test body once on SQLite and once on PostgreSQL:
/// `on_both_engines! { async fn name(database) { ... } }` makes `name::sqlite` and
/// `name::postgres`.
#[macro_export]
macro_rules! on_both_engines {
    ($(#[$meta:meta])* async fn $name:ident($database:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($database: $crate::monitor_server::ServerDatabase) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run($crate::monitor_server::ServerDatabase::sqlite()).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(database) = $crate::monitor_server::ServerDatabase::postgres() {
                    run(database).await
                }
            }
        }
    };
}
