//! `monitorctl import-mender`'s settings half: Mender's `config.sh` into `monitor.yaml`.
//!
//! A new `monitor.yaml` is written; an existing one is a user's edits, so it is only
//! changed with `--merge-settings` (its old text kept as `monitor.yaml.orig`), and
//! otherwise the lines to add are printed. Every line says what was done.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use monitor::FolderArgs;
use monitor_config::{
    convert_mender_settings, merge_settings, CarriedSetting, MENDER_CONFIG_FILE, SETTINGS_FILE_NAME,
};

/// Imports the settings of `config_sh` (Mender's default path when `None`, then skipped
/// when missing). `Ok(false)` when the settings could not be written as they are (the
/// problems are printed).
pub(crate) fn run(
    folders: &FolderArgs,
    config_sh: Option<&Path>,
    merge: bool,
) -> anyhow::Result<bool> {
    let (path, explicit) = match config_sh {
        Some(path) => (path.to_owned(), true),
        None => (PathBuf::from(MENDER_CONFIG_FILE), false),
    };
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound && !explicit => {
            outln!(
                "no Mender settings at {}: settings left as they are (point to config.sh with --mender-config)",
                path.display()
            );
            return Ok(true);
        }
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    };
    let converted = convert_mender_settings(&text);
    for not_carried in &converted.not_carried {
        outln!(
            "not carried: {}: {}",
            not_carried.mender_key.as_deref().unwrap_or("(line)"),
            not_carried.reason
        );
    }
    if converted.carried.is_empty() {
        outln!("no settings to carry from {}", path.display());
        return Ok(true);
    }

    let settings_file = folders.config_dir.join(SETTINGS_FILE_NAME);
    let existing = match fs::read_to_string(&settings_file) {
        Ok(text) => Some(text),
        Err(error) if error.kind() == io::ErrorKind::NotFound => None,
        Err(error) => {
            return Err(error).with_context(|| format!("cannot read {}", settings_file.display()))
        }
    };
    if existing.is_some() && !merge {
        let merged = merge_settings(None, &converted.carried, &settings_file)
            .map_err(|problems| anyhow::anyhow!("{}", problems[0]))?;
        outln!(
            "{} exists: left as it is; add these settings from {} to it (or rerun with --merge-settings):",
            settings_file.display(),
            path.display()
        );
        for line in merged.text.lines() {
            outln!("  {line}");
        }
        print_unplaced(&merged.unplaced);
        return Ok(true);
    }

    let merged = merge_settings(existing.as_deref(), &converted.carried, &settings_file)
        .map_err(|problems| anyhow::anyhow!("{}", problems[0]))?;
    print_unplaced(&merged.unplaced);
    if !merged.problems.is_empty() {
        for problem in &merged.problems {
            eprintln!("{problem}");
        }
        eprintln!(
            "{} not written: Mender's settings from {} do not make valid settings here, fix them there or write monitor.yaml by hand",
            settings_file.display(),
            path.display()
        );
        return Ok(false);
    }
    let contents = format!(
        "# Settings imported from Mender's {} by monitorctl import-mender.\n{}",
        path.display(),
        merged.text
    );
    match existing {
        None => {
            fs::create_dir_all(&folders.config_dir)
                .with_context(|| format!("cannot create {}", folders.config_dir.display()))?;
            monitor_store::write_atomically(&settings_file, contents.as_bytes())?;
            // Readable like the check files: monitord may run as another user than root.
            fs::set_permissions(&settings_file, fs::Permissions::from_mode(0o644))
                .with_context(|| format!("cannot set the mode of {}", settings_file.display()))?;
            outln!(
                "wrote {} with settings from {}:",
                settings_file.display(),
                path.display()
            );
        }
        Some(_) => {
            let mut backup = settings_file.clone().into_os_string();
            backup.push(".orig");
            let backup = PathBuf::from(backup);
            // A copy keeps the old file's mode: it may hold a webhook URL.
            fs::copy(&settings_file, &backup).with_context(|| {
                format!(
                    "cannot keep {} as {}",
                    settings_file.display(),
                    backup.display()
                )
            })?;
            let mode = fs::metadata(&settings_file)
                .with_context(|| format!("cannot read {}", settings_file.display()))?
                .permissions();
            monitor_store::write_atomically(&settings_file, contents.as_bytes())?;
            fs::set_permissions(&settings_file, mode)
                .with_context(|| format!("cannot set the mode of {}", settings_file.display()))?;
            outln!(
                "merged settings from {} into {} (its old text is in {}):",
                path.display(),
                settings_file.display(),
                backup.display()
            );
        }
    }
    for setting in &converted.carried {
        if merged
            .unplaced
            .iter()
            .all(|unplaced| unplaced.setting.key != setting.key)
        {
            outln!("  {}", describe(setting));
        }
    }
    Ok(true)
}

fn describe(setting: &CarriedSetting) -> String {
    format!(
        "{}: {} (from {})",
        setting.key,
        setting.value_text(),
        setting.mender_key
    )
}

fn print_unplaced(unplaced: &[monitor_config::Unplaced]) {
    for unplaced in unplaced {
        outln!(
            "not carried: {}: {}",
            unplaced.setting.mender_key,
            unplaced.reason
        );
    }
}
