//! The default checks: what the agent watches with no configuration at all (`monitord` on a
//! fresh device). Each is a check file under `config/defaults/`, embedded in the binary.
//!
//! A default runs (enabled) while no file of the same id is in `available/` or `enabled/`:
//! such a file replaces it, and `monitorctl disable` on a default writes its file into
//! `available/` without enabling it. `default_checks: false` in `monitor.yaml` turns every
//! default off. Adding a default is one file under `config/defaults/` and its line in
//! [`DEFAULT_CHECKS`].

use std::path::PathBuf;

use monitor_wire::CheckId;

use crate::check::CheckFormat;
use crate::store::{classify, FileName};

/// A built-in check: its file name (`<subsystem>_<check>.yaml`) and its text.
#[derive(Debug, Clone, Copy)]
pub struct DefaultCheck {
    pub file_name: &'static str,
    pub text: &'static str,
}

/// A default check from its file under `config/defaults/`, embedded.
macro_rules! default_check {
    ($file_name:literal) => {
        DefaultCheck {
            file_name: $file_name,
            text: include_str!(concat!("../../../config/defaults/", $file_name)),
        }
    };
}

/// Every default check, one line each (the file under `config/defaults/` is the check).
pub const DEFAULT_CHECKS: &[DefaultCheck] = &[
    // Every systemd unit that enters `failed`, one subject per unit.
    default_check!("service_failed_units.yaml"),
    // The root file system over 90% used (Mender's `diskusage root_space`).
    default_check!("diskusage_root_space.yaml"),
    // The root file system turned read-only.
    default_check!("storage_root_readonly.yaml"),
    // The SoC over 80 °C; quiet without the sensor.
    default_check!("temperature_soc.yaml"),
    // A Raspberry Pi under-voltage or throttled now; quiet on other boards.
    default_check!("power_board.yaml"),
];

impl DefaultCheck {
    /// The check's id, from its file name.
    pub fn id(&self) -> CheckId {
        match classify(std::ffi::OsStr::new(self.file_name)) {
            FileName::Check {
                id,
                format: CheckFormat::Yaml,
            } => id,
            _ => panic!(
                "default check {} is not named <subsystem>_<check>.yaml",
                self.file_name
            ),
        }
    }

    /// Where problems and `monitorctl list --json` say it comes from.
    pub fn shown_path(&self) -> PathBuf {
        PathBuf::from("(built in)").join(self.file_name)
    }
}

/// The default check of `id`, if there is one.
pub fn default_check(id: &CheckId) -> Option<&'static DefaultCheck> {
    DEFAULT_CHECKS.iter().find(|default| default.id() == *id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::resolve_check_text;

    #[test]
    fn every_default_check_is_valid() {
        for default in DEFAULT_CHECKS {
            let resolved = resolve_check_text(
                &default.id(),
                CheckFormat::Yaml,
                default.text,
                &default.shown_path(),
            );
            assert!(
                resolved.is_ok(),
                "{}: {:?}",
                default.file_name,
                resolved.err()
            );
        }
    }
}
