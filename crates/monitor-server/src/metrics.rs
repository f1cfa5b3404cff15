//! Prometheus metrics in the text exposition format, without a metrics library: a handful
//! of counters and one latency histogram, per replica (Prometheus sums the replicas), plus
//! device figures read from the database at scrape time (the same on every replica).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::fleet::{count_by_status, DeviceHealth};
use crate::storage::Device;

#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn add(&self, count: u64) {
        self.0.fetch_add(count, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

/// The server's own counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Alerts in accepted requests, resends included.
    pub alerts_received: Counter,
    /// Alerts stored for the first time.
    pub alerts_stored: Counter,
    /// Alert requests refused as invalid (400).
    pub alert_requests_rejected: Counter,
    pub configs_received: Counter,
    /// Pending devices dropped because more asked to join than `max_pending_devices`.
    pub pending_devices_dropped: Counter,
    /// Time to validate and store one accepted alert request.
    pub alert_request_seconds: Histogram,
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut text = String::new();
        let counters = [
            (
                "monitor_server_alerts_received_total",
                "Alerts in accepted requests, resends included.",
                &self.alerts_received,
            ),
            (
                "monitor_server_alerts_stored_total",
                "Alerts stored for the first time.",
                &self.alerts_stored,
            ),
            (
                "monitor_server_alert_requests_rejected_total",
                "Alert requests refused as invalid.",
                &self.alert_requests_rejected,
            ),
            (
                "monitor_server_configs_received_total",
                "Check configurations pushed by devices.",
                &self.configs_received,
            ),
            (
                "monitor_server_pending_devices_dropped_total",
                "Pending devices dropped, oldest first, past max_pending_devices.",
                &self.pending_devices_dropped,
            ),
        ];
        for (name, help, counter) in counters {
            let _ = writeln!(
                text,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                counter.get()
            );
        }
        let name = "monitor_server_alert_request_seconds";
        let _ = writeln!(
            text,
            "# HELP {name} Time to validate and store an alert request.\n# TYPE {name} histogram"
        );
        let histogram = &self.alert_request_seconds;
        for (bound, bucket) in BUCKETS.iter().zip(&histogram.buckets) {
            let _ = writeln!(
                text,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = histogram.count.load(Ordering::Relaxed);
        let sum = histogram.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            text,
            "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {sum}\n{name}_count {count}"
        );
        text
    }
}

/// Devices per status and the open alerts, as gauges.
pub fn render_devices(devices: &[Device]) -> String {
    let mut text = String::from(
        "# HELP monitor_server_devices Devices per admission status.\n# TYPE monitor_server_devices gauge\n",
    );
    for (status, count) in count_by_status(devices) {
        let _ = writeln!(
            text,
            "monitor_server_devices{{status=\"{}\"}} {count}",
            status.as_str()
        );
    }
    let open: u64 = devices
        .iter()
        .map(|device| DeviceHealth::of(device).open_alerts())
        .sum();
    let _ = writeln!(
        text,
        "# HELP monitor_server_open_alerts Subjects whose latest alert is CRITICAL.\n# TYPE monitor_server_open_alerts gauge\nmonitor_server_open_alerts {open}"
    );
    text
}

/// Notifications by state, from the outbox (the same on every replica).
pub fn render_notifications((sent, failed, waiting): (u64, u64, u64)) -> String {
    format!(
        "# HELP monitor_server_notifications Notifications in the outbox by state.\n\
         # TYPE monitor_server_notifications gauge\n\
         monitor_server_notifications{{state=\"sent\"}} {sent}\n\
         monitor_server_notifications{{state=\"failed\"}} {failed}\n\
         monitor_server_notifications{{state=\"waiting\"}} {waiting}\n"
    )
}
