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

/// A real tmpfs filled over a `diskusage` check's threshold and emptied, sampled by the Pi
/// binaries (statvfs through the emulator's system-call translation, 32-bit too).
fn samples_a_full_disk(target: &Target) {
    if let Some(binaries) = target.binaries() {
        crate::health::full_disk_scenario(Sandbox::running(binaries));
    }
}

/// A Nagios-style plugin script going from OK to CRITICAL and back, run by the Pi
/// binaries (fork, exec and process groups through the emulator).
fn runs_a_plugin(target: &Target) {
    if let Some(binaries) = target.binaries() {
        crate::probes::plugin_scenario(Sandbox::running(binaries));
    }
}

#[test]
fn the_aarch64_musl_agent_samples_a_full_disk_under_emulation() {
    samples_a_full_disk(&AARCH64_MUSL);
}

#[test]
fn the_armv7_agent_samples_a_full_disk_under_emulation() {
    samples_a_full_disk(&ARMV7_GNUEABIHF);
}

#[test]
fn the_aarch64_musl_agent_runs_a_plugin_under_emulation() {
    runs_a_plugin(&AARCH64_MUSL);
}

#[test]
fn the_armv7_agent_runs_a_plugin_under_emulation() {
    runs_a_plugin(&ARMV7_GNUEABIHF);
}

/// A monitor-server package from `cross/build.sh`, with what `file` says of its binary and
/// how to run it here.
struct ServerPackage {
    arch: &'static str,
    target: Target,
}

const SERVER_PACKAGES: [ServerPackage; 3] = [
    ServerPackage {
        arch: "arm64",
        target: AARCH64_MUSL,
    },
    ServerPackage {
        arch: "armhf",
        target: ARMV7_GNUEABIHF,
    },
    ServerPackage {
        arch: "amd64",
        target: Target {
            triple: "x86_64-unknown-linux-gnu",
            runner: &[],
            architecture: "x86-64",
        },
    },
];

/// The settings `config/systemd/monitor-server.service` must keep: a system user of its
/// own, private state, and the file system read-only around it.
const SERVER_UNIT_HARDENING: [&str; 8] = [
    "User=monitor-server",
    "StateDirectory=monitor-server",
    "StateDirectoryMode=0700",
    "ProtectSystem=strict",
    "NoNewPrivileges=yes",
    "CapabilityBoundingSet=\n",
    "PrivateTmp=yes",
    "SystemCallFilter=@system-service",
];

/// `dist/monitor-server_<version>_<arch>.deb`, or `None` (outside CI) when it is missing.
fn server_package(arch: &str) -> Option<PathBuf> {
    let deb = repository_root().join("dist").join(format!(
        "monitor-server_{}_{arch}.deb",
        env!("CARGO_PKG_VERSION")
    ));
    if deb.is_file() {
        return Some(deb);
    }
    let problem = format!("{} is missing; run cross/build.sh", deb.display());
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{problem}");
    eprintln!("skipped: {problem}");
    None
}

fn dpkg_deb(args: &[&str], deb: &std::path::Path) -> String {
    let output = Command::new("dpkg-deb")
        .args(args)
        .arg(deb)
        .output()
        .expect("dpkg-deb runs (apt-get install dpkg; cross/build.sh needs it too)");
    assert!(output.status.success(), "dpkg-deb {args:?}: {output:?}");
    stdout(&output)
}

/// Each monitor-server package: its control fields, its files with their owners and modes,
/// a conffile for the settings, the hardened unit, and a binary of its architecture that
/// starts (under qemu-user for the ARM ones).
#[test]
fn the_server_packages_hold_a_hardened_service_and_a_binary_of_their_architecture() {
    for package in &SERVER_PACKAGES {
        let Some(deb) = server_package(package.arch) else {
            continue;
        };
        let version = env!("CARGO_PKG_VERSION");
        let control = dpkg_deb(&["--info"], &deb);
        for field in [
            "Package: monitor-server".to_owned(),
            format!("Version: {version}"),
            format!("Architecture: {}", package.arch),
            "Section: net".to_owned(),
        ] {
            assert!(
                control.lines().any(|line| line.trim() == field),
                "{}: no `{field}` in {control}",
                deb.display()
            );
        }
        assert!(
            control.contains("Depends: ") && control.contains("adduser"),
            "postinst makes a system user with adduser: {control}"
        );

        let contents = dpkg_deb(&["--contents"], &deb);
        for (mode, path) in [
            ("-rwxr-xr-x", "./usr/bin/monitor-server"),
            (
                "-rw-r--r--",
                "./usr/lib/systemd/system/monitor-server.service",
            ),
            // May hold the PostgreSQL and SMTP passwords.
            ("-rw-------", "./etc/default/monitor-server"),
            ("-rw-r--r--", "./usr/share/doc/monitor-server/copyright"),
        ] {
            assert!(
                contents.lines().any(|line| line.starts_with(mode)
                    && line.contains(" root/root ")
                    && line.ends_with(&format!(" {path}"))),
                "{}: {path} is missing or not {mode} root/root:\n{contents}",
                deb.display()
            );
        }
        assert!(
            !contents.contains("./var/lib/monitor-server"),
            "the state directory is made by postinst and systemd, owned by the service user"
        );

        let extracted = tempfile::tempdir().unwrap();
        let output = Command::new("dpkg-deb")
            .arg("--control")
            .arg(&deb)
            .arg(extracted.path().join("DEBIAN"))
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let conffiles = std::fs::read_to_string(extracted.path().join("DEBIAN/conffiles"))
            .expect("a conffiles list");
        assert_eq!(conffiles.trim(), "/etc/default/monitor-server");
        let postinst = std::fs::read_to_string(extracted.path().join("DEBIAN/postinst")).unwrap();
        assert!(postinst.contains("adduser --system"), "{postinst}");

        let output = Command::new("dpkg-deb")
            .arg("--extract")
            .arg(&deb)
            .arg(extracted.path())
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let unit = std::fs::read_to_string(
            extracted
                .path()
                .join("usr/lib/systemd/system/monitor-server.service"),
        )
        .unwrap();
        for setting in SERVER_UNIT_HARDENING {
            assert!(
                unit.contains(&format!("\n{setting}")),
                "the unit lost `{}`",
                setting.trim()
            );
        }

        let binary = extracted.path().join("usr/bin/monitor-server");
        let file = Command::new("file").arg(&binary).output().unwrap();
        assert!(
            stdout(&file).contains(package.target.architecture),
            "{}: {}",
            package.arch,
            stdout(&file)
        );
        let mut command = match package.target.runner {
            [] => Command::new(&binary),
            [emulator, rest @ ..] => {
                let mut command = Command::new(emulator);
                command.args(rest).arg(&binary);
                command
            }
        };
        let output = command.arg("--version").output().unwrap_or_else(|error| {
            panic!("{}: run monitor-server --version: {error}", package.arch)
        });
        assert!(output.status.success(), "{}: {output:?}", package.arch);
        assert_eq!(stdout(&output).trim(), format!("monitor-server {version}"));
    }
}

/// `systemd-analyze security` rates the server's unit as well hardened: an exposure of 2.0
/// or less ("OK"; 1.1 when this was written).
#[test]
fn systemd_analyze_rates_the_server_unit_well_hardened() {
    let unit = repository_root().join("config/systemd/monitor-server.service");
    let output = match Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
        .arg(&unit)
        .output()
    {
        Ok(output) => output,
        Err(error) => {
            let problem = format!("systemd-analyze cannot run ({error}); apt-get install systemd");
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{problem}");
            eprintln!("skipped: {problem}");
            return;
        }
    };
    let report = stdout(&output);
    let exposure = report
        .lines()
        .find_map(|line| {
            line.split("Overall exposure level for monitor-server.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {report}{}", stderr(&output)));
    assert!(exposure <= 2.0, "exposure {exposure}:\n{report}");
    assert!(output.status.success(), "{report}{}", stderr(&output));
}

/// The amd64 server package installs on Debian (in a container from the local Debian base):
/// postinst makes the system user and its private state directory, the admin commands run
/// as that user, and a purge removes the binary and the data.
#[test]
fn the_amd64_server_package_installs_makes_its_user_and_purges() {
    let Some(deb) = server_package("amd64") else {
        return;
    };
    if let Some(missing) = crate::podman::missing_deploy_tools() {
        let problem = format!(
            "installing {} needs {missing}; install the apt packages {} {}",
            deb.display(),
            crate::podman::APT_PACKAGES,
            crate::podman::DEPLOY_APT_PACKAGES
        );
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{problem}");
        eprintln!("skipped: {problem}");
        return;
    }
    let _engine = crate::podman::one_engine();
    let Some(podman) = crate::podman::Podman::start() else {
        return;
    };
    let target = std::path::Path::new(crate::harness::monitord_binary())
        .ancestors()
        .nth(2)
        .expect("the target folder")
        .join("container-base");
    let base = podman.import_debian_base(&target);
    let package = deb.file_name().unwrap().to_string_lossy().into_owned();
    let script = format!(
        r#"set -eu
dpkg -i /dist/{package} >/dev/null
getent passwd monitor-server
stat -c 'state %U %G %a' /var/lib/monitor-server
stat -c 'settings %U %a' /etc/default/monitor-server
runuser -u monitor-server -- monitor-server device add pi-package | sed 's/^.*$/token printed/'
find /var/lib/monitor-server -mindepth 1 ! -user monitor-server | sed 's/^/not the service user: /'
dpkg --purge monitor-server >/dev/null
[ -e /usr/bin/monitor-server ] || echo 'purged binary'
[ -e /var/lib/monitor-server ] || echo 'purged data'
"#
    );
    let dist = format!("{}:/dist:ro", deb.parent().unwrap().display());
    let output = podman.podman(&[
        "run",
        "--rm",
        "--network=none",
        "-v",
        &dist,
        base,
        "sh",
        "-c",
        &script,
    ]);
    let report = stdout(&output);
    assert!(output.status.success(), "{report}{}", stderr(&output));
    assert!(
        report.contains("monitor-server:x:") && report.contains(":/var/lib/monitor-server:"),
        "{report}"
    );
    for line in [
        "state monitor-server monitor-server 700",
        "settings root 600",
        "token printed",
        "purged binary",
        "purged data",
    ] {
        assert!(
            report.lines().any(|seen| seen == line),
            "no `{line}` in:\n{report}"
        );
    }
    assert!(!report.contains("not the service user"), "{report}");
}
