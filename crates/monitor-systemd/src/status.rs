//! What is known about one unit, and how it is shown to a person.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use monitor_source::WatchedStatus;
use monitor_wire::Details;
use serde_json::Value as Json;
use zbus::zvariant::Value;

/// A unit's state as systemd reports it on `org.freedesktop.systemd1.Unit` and (for services)
/// `org.freedesktop.systemd1.Service`. Fields a unit does not have stay empty or zero.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnitStatus {
    /// `Id`: the unit's full name (`crasher.service`).
    pub unit: String,
    /// `Description=` of the unit file.
    pub description: String,
    /// `loaded`, `not-found`, `bad-setting`, `error`, `masked`, ...
    pub load_state: String,
    /// `active`, `reloading`, `inactive`, `failed`, `activating`, `deactivating`.
    pub active_state: String,
    /// The type-specific state: `running`, `exited`, `dead`, `failed`, `auto-restart`, ...
    pub sub_state: String,
    /// The service's `Result`: `success`, `exit-code`, `signal`, `core-dump`, `timeout`, ...
    pub result: String,
    /// The running main process, 0 when there is none.
    pub main_pid: u32,
    /// `CLD_*` of the last main process: 1 exited, 2 killed, 3 dumped; 0 while it runs.
    pub exec_main_code: i32,
    /// Its exit status, or the signal number when killed or dumped.
    pub exec_main_status: i32,
    /// How often systemd restarted the service automatically (`Restart=`) since it was last
    /// started by hand.
    pub n_restarts: u32,
    /// When `active_state` last changed, µs since the Unix epoch.
    pub state_change_timestamp_usec: u64,
    /// The unit file, empty when there is none.
    pub fragment_path: String,
    /// The process the `exec_main_*` fields are about (`ExecMainPID`), also after it ended.
    pub exec_main_pid: u32,
    /// Why the unit could not be loaded (`LoadError`'s message), empty when it loaded.
    pub load_error: String,
}

/// Which D-Bus interface a property belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interface {
    Unit,
    Service,
}

impl Interface {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Interface::Unit => "org.freedesktop.systemd1.Unit",
            Interface::Service => "org.freedesktop.systemd1.Service",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Interface> {
        [Interface::Unit, Interface::Service]
            .into_iter()
            .find(|interface| interface.name() == name)
    }

    /// The properties of this interface the watcher follows.
    pub(crate) fn properties(self) -> &'static [&'static str] {
        match self {
            Interface::Unit => &[
                "Id",
                "Description",
                "LoadState",
                "ActiveState",
                "SubState",
                "StateChangeTimestamp",
                "FragmentPath",
                "LoadError",
            ],
            Interface::Service => &[
                "Result",
                "MainPID",
                "ExecMainPID",
                "ExecMainCode",
                "ExecMainStatus",
                "NRestarts",
            ],
        }
    }
}

impl UnitStatus {
    /// Whether the unit counts as running: `active` or `reloading`, as `systemctl is-active` says.
    pub fn running(&self) -> bool {
        matches!(self.active_state.as_str(), "active" | "reloading")
    }

    /// Whether systemd could not load the unit (no unit file, masked, broken unit file).
    pub fn load_problem(&self) -> bool {
        matches!(
            self.load_state.as_str(),
            "not-found" | "error" | "masked" | "bad-setting"
        )
    }

    /// The alert details: a `systemctl status`-like description plus the state as fields
    /// (`unit`, `load_state`, `active_state`, `sub_state`, `result`, `main_pid`, `exit_code`,
    /// `exit_status`, `n_restarts`, `since`); empty and zero fields are left out.
    pub fn details(&self) -> Details {
        let mut fields = BTreeMap::new();
        let mut text = |name: &str, value: &str| {
            if !value.is_empty() {
                fields.insert(name.to_owned(), Json::from(value));
            }
        };
        text("unit", &self.unit);
        text("load_state", &self.load_state);
        text("active_state", &self.active_state);
        text("sub_state", &self.sub_state);
        text("result", &self.result);
        if let Some(since) = self.since() {
            fields.insert("since".into(), Json::from(since));
        }
        if self.main_pid != 0 {
            fields.insert("main_pid".into(), Json::from(self.main_pid));
        }
        if let Some(code) = exit_code_name(self.exec_main_code) {
            fields.insert("exit_code".into(), Json::from(code));
            let status = match signal_name(self.exec_main_status) {
                Some(signal) if self.exec_main_code != CLD_EXITED => Json::from(signal),
                _ => Json::from(self.exec_main_status),
            };
            fields.insert("exit_status".into(), status);
        }
        if self.n_restarts != 0 {
            fields.insert("n_restarts".into(), Json::from(self.n_restarts));
        }
        Details {
            description: Some(self.status_text()),
            fields,
            ..Details::default()
        }
    }

    /// The head of `systemctl status`:
    ///
    /// ```text
    /// crasher.service - Crasher
    ///      Loaded: loaded (/path/crasher.service)
    ///      Active: failed (Result: exit-code) since 2026-11-22T00:10:00Z
    ///    Main PID: 1234 (code=exited, status=1/FAILURE)
    ///    Restarts: 3
    /// ```
    pub fn status_text(&self) -> String {
        let mut lines = Vec::new();
        lines.push(
            if self.description.is_empty() || self.description == self.unit {
                self.unit.clone()
            } else {
                format!("{} - {}", self.unit, self.description)
            },
        );

        let mut loaded = format!("     Loaded: {}", self.load_state);
        if !self.fragment_path.is_empty() {
            loaded.push_str(&format!(" ({})", self.fragment_path));
        } else if !self.load_error.is_empty() {
            loaded.push_str(&format!(" (Reason: {})", self.load_error));
        }
        lines.push(loaded);

        let mut active = format!("     Active: {}", self.active_state);
        if self.active_state == "failed" && !self.result.is_empty() {
            active.push_str(&format!(" (Result: {})", self.result));
        } else if !self.sub_state.is_empty() {
            active.push_str(&format!(" ({})", self.sub_state));
        }
        if let Some(since) = self.since() {
            active.push_str(&format!(" since {since}"));
        }
        lines.push(active);

        if self.main_pid != 0 {
            lines.push(format!("   Main PID: {}", self.main_pid));
        } else if let Some(code) = exit_code_name(self.exec_main_code) {
            let status = if self.exec_main_code == CLD_EXITED {
                exit_status_name(self.exec_main_status)
            } else {
                signal_name(self.exec_main_status)
            };
            let status = match status {
                Some(name) => format!("{}/{name}", self.exec_main_status),
                None => self.exec_main_status.to_string(),
            };
            let pid = if self.exec_main_pid != 0 {
                format!("{} ", self.exec_main_pid)
            } else {
                String::new()
            };
            lines.push(format!("   Main PID: {pid}(code={code}, status={status})"));
        }

        if self.n_restarts != 0 {
            lines.push(format!("   Restarts: {}", self.n_restarts));
        }
        lines.join("\n")
    }

    /// `state_change_timestamp_usec` in RFC 3339 (seconds, UTC), if set.
    fn since(&self) -> Option<String> {
        (self.state_change_timestamp_usec != 0).then(|| {
            let time = UNIX_EPOCH + Duration::from_micros(self.state_change_timestamp_usec);
            humantime::format_rfc3339_seconds(time).to_string()
        })
    }

    /// Takes one property's value as systemd sent it. Returns false for a property the watcher
    /// does not follow or a value of an unexpected type.
    pub(crate) fn apply(&mut self, name: &str, value: &Value<'_>) -> bool {
        let value = match value {
            Value::Value(inner) => inner.as_ref(),
            other => other,
        };
        match (name, value) {
            ("Id", Value::Str(text)) => self.unit = text.to_string(),
            ("Description", Value::Str(text)) => self.description = text.to_string(),
            ("LoadState", Value::Str(text)) => self.load_state = text.to_string(),
            ("ActiveState", Value::Str(text)) => self.active_state = text.to_string(),
            ("SubState", Value::Str(text)) => self.sub_state = text.to_string(),
            ("StateChangeTimestamp", Value::U64(usec)) => self.state_change_timestamp_usec = *usec,
            ("FragmentPath", Value::Str(text)) => self.fragment_path = text.to_string(),
            ("LoadError", Value::Structure(error)) => {
                // (name, message): both empty when the unit loaded.
                self.load_error = match error.fields() {
                    [_, Value::Str(message)] => message.to_string(),
                    _ => String::new(),
                }
            }
            ("Result", Value::Str(text)) => self.result = text.to_string(),
            ("MainPID", Value::U32(pid)) => self.main_pid = *pid,
            ("ExecMainPID", Value::U32(pid)) => self.exec_main_pid = *pid,
            ("ExecMainCode", Value::I32(code)) => self.exec_main_code = *code,
            ("ExecMainStatus", Value::I32(status)) => self.exec_main_status = *status,
            ("NRestarts", Value::U32(count)) => self.n_restarts = *count,
            _ => return false,
        }
        true
    }
}

const CLD_EXITED: i32 = 1;
const CLD_KILLED: i32 = 2;
const CLD_DUMPED: i32 = 3;

fn exit_code_name(code: i32) -> Option<&'static str> {
    match code {
        CLD_EXITED => Some("exited"),
        CLD_KILLED => Some("killed"),
        CLD_DUMPED => Some("dumped"),
        _ => None,
    }
}

/// Linux signal names without `SIG`, as systemctl prints them (`status=9/KILL`).
fn signal_name(signal: i32) -> Option<&'static str> {
    const NAMES: [&str; 31] = [
        "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
        "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG",
        "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
    ];
    usize::try_from(signal)
        .ok()
        .and_then(|number| number.checked_sub(1))
        .and_then(|index| NAMES.get(index).copied())
}

/// The exit statuses systemctl names (`status=1/FAILURE`, `status=203/EXEC`); others are
/// shown as bare numbers, as systemctl does.
fn exit_status_name(status: i32) -> Option<&'static str> {
    Some(match status {
        0 => "SUCCESS",
        1 => "FAILURE",
        200 => "CHDIR",
        201 => "NICE",
        202 => "FDS",
        203 => "EXEC",
        204 => "MEMORY",
        205 => "LIMITS",
        206 => "OOM_ADJUST",
        207 => "SIGNAL_MASK",
        208 => "STDIN",
        209 => "STDOUT",
        210 => "CHROOT",
        211 => "IOPRIO",
        212 => "TIMERSLACK",
        213 => "SECUREBITS",
        214 => "SETSCHEDULER",
        215 => "CPUAFFINITY",
        216 => "GROUP",
        217 => "USER",
        218 => "CAPABILITIES",
        219 => "CGROUP",
        220 => "SETSID",
        221 => "CONFIRM",
        222 => "STDERR",
        224 => "PAM",
        225 => "NETWORK",
        226 => "NAMESPACE",
        227 => "NO_NEW_PRIVILEGES",
        228 => "SECCOMP",
        229 => "SELINUX_CONTEXT",
        230 => "PERSONALITY",
        231 => "APPARMOR_PROFILE",
        232 => "ADDRESS_FAMILIES",
        233 => "RUNTIME_DIRECTORY",
        235 => "CHOWN",
        236 => "SMACK_PROCESS_LABEL",
        237 => "KEYRING",
        238 => "STATE_DIRECTORY",
        239 => "CACHE_DIRECTORY",
        240 => "LOGS_DIRECTORY",
        241 => "CONFIGURATION_DIRECTORY",
        242 => "NUMA_POLICY",
        243 => "CREDENTIALS",
        245 => "BPF",
        _ => return None,
    })
}

impl WatchedStatus for UnitStatus {
    fn details(&self) -> Details {
        UnitStatus::details(self)
    }

    /// The unit is loaded (a missing or masked unit is its check's problem).
    fn found(&self) -> bool {
        self.load_state == "loaded"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed_crasher() -> UnitStatus {
        UnitStatus {
            unit: "crasher.service".into(),
            description: "Crasher".into(),
            load_state: "loaded".into(),
            active_state: "failed".into(),
            sub_state: "failed".into(),
            result: "exit-code".into(),
            main_pid: 0,
            exec_main_code: 1,
            exec_main_status: 1,
            n_restarts: 3,
            // 2026-11-22T00:10:00Z
            state_change_timestamp_usec: 1_795_306_200_000_000,
            fragment_path: "/path/crasher.service".into(),
            exec_main_pid: 1234,
            load_error: String::new(),
        }
    }

    #[test]
    fn status_text_of_a_failed_service_reads_like_systemctl_status() {
        assert_eq!(
            failed_crasher().status_text(),
            "crasher.service - Crasher\n     Loaded: loaded (/path/crasher.service)\n     Active: failed (Result: exit-code) since 2026-11-22T00:10:00Z\n   Main PID: 1234 (code=exited, status=1/FAILURE)\n   Restarts: 3"
        );
    }

    #[test]
    fn status_text_of_a_running_service_shows_its_main_pid_and_sub_state() {
        let status = UnitStatus {
            active_state: "active".into(),
            sub_state: "running".into(),
            result: "success".into(),
            main_pid: 4321,
            exec_main_code: 0,
            exec_main_status: 0,
            n_restarts: 0,
            ..failed_crasher()
        };
        assert_eq!(
            status.status_text(),
            "crasher.service - Crasher\n     Loaded: loaded (/path/crasher.service)\n     Active: active (running) since 2026-11-22T00:10:00Z\n   Main PID: 4321"
        );
    }

    #[test]
    fn status_text_of_a_killed_process_names_the_signal() {
        let status = UnitStatus {
            result: "signal".into(),
            exec_main_code: 2,
            exec_main_status: 9,
            n_restarts: 0,
            ..failed_crasher()
        };
        assert!(
            status
                .status_text()
                .ends_with("   Main PID: 1234 (code=killed, status=9/KILL)"),
            "{}",
            status.status_text()
        );
    }

    #[test]
    fn status_text_of_a_missing_unit_gives_the_reason() {
        let status = UnitStatus {
            unit: "nothere.service".into(),
            description: "nothere.service".into(),
            load_state: "not-found".into(),
            active_state: "inactive".into(),
            sub_state: "dead".into(),
            load_error: "Unit nothere.service not found.".into(),
            ..UnitStatus::default()
        };
        assert_eq!(
            status.status_text(),
            "nothere.service\n     Loaded: not-found (Reason: Unit nothere.service not found.)\n     Active: inactive (dead)"
        );
    }

    #[test]
    fn details_carry_the_state_as_fields_and_leave_out_empty_ones() {
        let details = failed_crasher().details();
        assert_eq!(
            details.description.as_deref(),
            Some(failed_crasher().status_text().as_str())
        );
        let fields = serde_json::to_value(&details.fields).unwrap();
        assert_eq!(
            fields,
            serde_json::json!({
                "unit": "crasher.service",
                "load_state": "loaded",
                "active_state": "failed",
                "sub_state": "failed",
                "result": "exit-code",
                "exit_code": "exited",
                "exit_status": 1,
                "n_restarts": 3,
                "since": "2026-11-22T00:10:00Z",
            })
        );
    }

    #[test]
    fn details_of_a_killed_process_give_the_signal_name_as_exit_status() {
        let status = UnitStatus {
            exec_main_code: 3,
            exec_main_status: 11,
            main_pid: 0,
            ..failed_crasher()
        };
        let details = status.details();
        assert_eq!(details.fields["exit_code"], "dumped");
        assert_eq!(details.fields["exit_status"], "SEGV");
        assert!(!details.fields.contains_key("main_pid"));
    }

    #[test]
    fn details_of_a_running_service_have_its_main_pid_and_no_exit_fields() {
        let status = UnitStatus {
            active_state: "active".into(),
            main_pid: 77,
            exec_main_code: 0,
            n_restarts: 0,
            ..failed_crasher()
        };
        let details = status.details();
        assert_eq!(details.fields["main_pid"], 77);
        assert!(!details.fields.contains_key("exit_code"));
        assert!(!details.fields.contains_key("exit_status"));
        assert!(!details.fields.contains_key("n_restarts"));
    }

    #[test]
    fn running_is_what_systemctl_is_active_calls_active() {
        for (state, running) in [
            ("active", true),
            ("reloading", true),
            ("inactive", false),
            ("failed", false),
            ("activating", false),
            ("deactivating", false),
        ] {
            let status = UnitStatus {
                active_state: state.into(),
                ..UnitStatus::default()
            };
            assert_eq!(status.running(), running, "{state}");
        }
    }

    #[test]
    fn properties_apply_by_name_and_type() {
        let mut status = UnitStatus::default();
        assert!(status.apply("ActiveState", &Value::from("active")));
        assert!(status.apply("NRestarts", &Value::U32(4)));
        assert!(status.apply("ExecMainCode", &Value::I32(2)));
        assert!(status.apply(
            "LoadError",
            &Value::from(("org.freedesktop.systemd1.NoSuchUnit", "Unit x not found."))
        ));
        assert!(!status.apply("NRestarts", &Value::from("four")));
        assert!(!status.apply("Names", &Value::from("x")));
        assert_eq!(status.active_state, "active");
        assert_eq!(status.n_restarts, 4);
        assert_eq!(status.exec_main_code, 2);
        assert_eq!(status.load_error, "Unit x not found.");
    }
}
