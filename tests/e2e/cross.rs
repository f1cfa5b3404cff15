//! The Raspberry Pi binaries from `cross/build.sh` (in `dist/<target>/`), run under
//! qemu-user: they start, validate the example configuration, and the aarch64 and armv7
//! agents run the seed's crasher scenario end to end.
//!
//! Without `dist/` (a plain `cargo test`) these tests say so and pass; under `CI=true`,
//! where `.ci/run` builds `dist/` first, a missing binary or emulator fails them.

use std::path::PathBuf;
use std::process::Command;

use crate::harness::{repository_root, stderr, stdout, Binaries, Sandbox};
use crate::log_checks::seed_crasher_scenario;

/// A cross-built target and how to run its binaries here.
struct Target {
    triple: &'static str,
    /// The emulator, with the folder of the target's dynamic loader and libc (Debian's
    /// `libc6-*-cross`) for the glibc builds; the static musl build needs none.
    runner: &'static [&'static str],
    /// What `file` says about the binaries.
    architecture: &'static str,
}

const AARCH64_MUSL: Target = Target {
    triple: "aarch64-unknown-linux-musl",
    runner: &["qemu-aarch64-static"],
    architecture: "ARM aarch64",
};

const ARMV7_GNUEABIHF: Target = Target {
    triple: "armv7-unknown-linux-gnueabihf",
    runner: &["qemu-arm-static", "-L", "/usr/arm-linux-gnueabihf"],
    architecture: "32-bit LSB pie executable, ARM, EABI5",
};

const AARCH64_GNU: Target = Target {
    triple: "aarch64-unknown-linux-gnu",
    runner: &["qemu-aarch64-static", "-L", "/usr/aarch64-linux-gnu"],
    architecture: "ARM aarch64",
};

impl Target {
    /// The emulated binaries, or `None` (outside CI) when they or the emulator are missing.
    fn binaries(&self) -> Option<Binaries> {
        let folder = repository_root().join("dist").join(self.triple);
        let mut missing: Vec<PathBuf> = ["monitord", "monitorctl"]
            .iter()
            .map(|name| folder.join(name))
            .filter(|path| !path.is_file())
            .collect();
        missing.extend(
            self.runner
                .iter()
                .filter(|part| !part.starts_with('-'))
                .map(PathBuf::from)
                .filter(|part| part.is_absolute() && !part.is_dir()),
        );
        let emulator = self.runner[0];
        let emulator_runs = Command::new(emulator).arg("--version").output().is_ok();
        if missing.is_empty() && emulator_runs {
            return Some(Binaries::emulated(self.runner, &folder));
        }
        let problem = format!(
            "{}: missing {missing:?}{}; run cross/build.sh (and install qemu-user-static and \
             the libc6-*-cross package of the target)",
            self.triple,
            if emulator_runs {
                String::new()
            } else {
                format!(" and the emulator {emulator}")
            },
        );
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{problem}");
        eprintln!("skipped: {problem}");
        None
    }
}

/// `--version` of both binaries, `file`'s architecture, and `monitorctl validate` on the
/// example configuration.
fn starts_and_validates(target: &Target) {
    let Some(binaries) = target.binaries() else {
        return;
    };
    for (name, mut command) in [
        ("monitord", binaries.monitord()),
        ("monitorctl", binaries.monitorctl()),
    ] {
        let output = command.arg("--version").output().unwrap();
        assert!(output.status.success(), "{name} --version: {output:?}");
        assert_eq!(
            stdout(&output).trim(),
            format!("{name} {}", env!("CARGO_PKG_VERSION"))
        );
        let binary = repository_root()
            .join("dist")
            .join(target.triple)
            .join(name);
        let file = Command::new("file")
            .arg(&binary)
            .output()
            .expect("file(1) runs (apt-get install file; cross/build.sh installs it)");
        assert!(
            stdout(&file).contains(target.architecture),
            "{}",
            stdout(&file)
        );
    }
    let output = binaries
        .monitorctl()
        .arg("--config-dir")
        .arg(repository_root().join("examples/config"))
        .arg("validate")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    assert!(
        stdout(&output).contains("no problems"),
        "{}",
        stdout(&output)
    );
}

fn runs_the_seed_crasher_scenario(target: &Target) {
    if let Some(binaries) = target.binaries() {
        seed_crasher_scenario(Sandbox::running(binaries));
    }
}

#[test]
fn aarch64_musl_binaries_start_and_validate_under_emulation() {
    starts_and_validates(&AARCH64_MUSL);
}

#[test]
fn armv7_binaries_start_and_validate_under_emulation() {
    starts_and_validates(&ARMV7_GNUEABIHF);
}

#[test]
fn aarch64_gnu_binaries_start_and_validate_under_emulation() {
    starts_and_validates(&AARCH64_GNU);
}

#[test]
fn the_aarch64_musl_agent_raises_critical_then_ok_under_emulation() {
    runs_the_seed_crasher_scenario(&AARCH64_MUSL);
}

#[test]
fn the_armv7_agent_raises_critical_then_ok_under_emulation() {
    runs_the_seed_crasher_scenario(&ARMV7_GNUEABIHF);
}
