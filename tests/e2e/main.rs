//! End-to-end tests of the built `monitord` and `monitorctl` binaries: real files, real
//! child processes (the seed's crasher.py among them), real signals, the real control socket.
//!
//! One test binary with a small harness (`harness.rs`); every wait is for an observed event
//! with a deadline.

#[path = "../support/devicemonitor_standin.rs"]
mod devicemonitor_standin;
#[path = "../support/discord_standin.rs"]
mod discord_standin;
#[path = "../support/faultfs.rs"]
mod faultfs;
mod harness;
#[path = "../support/http_standin.rs"]
mod http_standin;
#[path = "../support/mender_auth_standin.rs"]
mod mender_auth_standin;
#[path = "../support/monitor_server.rs"]
mod monitor_server;
#[path = "../support/mosquitto.rs"]
mod mosquitto;
#[path = "../support/mounts.rs"]
mod mounts;
#[path = "../support/ntfy_standin.rs"]
mod ntfy_standin;
#[path = "../support/podman.rs"]
mod podman;
#[path = "../support/postgres.rs"]
mod postgres;
#[path = "../support/slack_standin.rs"]
mod slack_standin;
#[path = "../support/smtp_sink.rs"]
mod smtp_sink;
#[path = "../support/telegram_standin.rs"]
mod telegram_standin;
#[path = "../support/tls_certificates.rs"]
mod tls_certificates;
#[path = "../support/user_manager.rs"]
mod user_manager;
#[path = "../support/webhook_standin.rs"]
mod webhook_standin;

mod channels;
mod chat;
mod cli;
mod commands;
mod containers;
mod cross;
mod default_checks;
mod delivery;
mod email;
mod examples;
mod failed_units;
mod health;
mod hostile_paths;
mod hygiene;
mod log_checks;
mod mender_cli;
mod mender_client;
mod mender_scenarios;
mod mqtt;
mod private_bus;
mod probes;
mod raise;
mod ready;
mod server;
mod server_container;
mod services;
mod signals;
mod silent;
mod state;
mod storage;
mod test_destination;
mod vitals;
