//! Reading the kernel's small text files: sysfs attributes (one value each) and procfs
//! tables, and finding the numbered entries of a sysfs class (`thermal_zone0`,
//! `hwmon3`). Private to the crate: each probe words its own `Reading::Unavailable`.

use std::io;
use std::path::{Path, PathBuf};

/// The file's text without the trailing newline every sysfs attribute ends with.
pub(crate) fn read_text(path: &Path) -> io::Result<String> {
    let mut text = std::fs::read_to_string(path)?;
    let kept = text.trim_end().len();
    text.truncate(kept);
    Ok(text)
}

/// The entries of `dir` named `<prefix><number>`, in the order of their numbers
/// (`thermal_zone2` before `thermal_zone10`). A missing folder has none.
pub(crate) fn numbered_entries(dir: &Path, prefix: &str) -> io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut numbered = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(number) = name
            .to_str()
            .and_then(|name| name.strip_prefix(prefix))
            .and_then(|digits| digits.parse::<u64>().ok())
        else {
            continue;
        };
        numbered.push((number, entry.path()));
    }
    numbered.sort();
    Ok(numbered.into_iter().map(|(_, path)| path).collect())
}

/// "cannot read /sys/...: permission denied" style wording of a failed read.
pub(crate) fn describe(path: &Path, error: &io::Error) -> String {
    format!("cannot read {}: {}", path.display(), error_text(error))
}

fn error_text(error: &io::Error) -> String {
    // io::Error's Display adds "(os error 13)"; the kind's own words read better in a
    // status line, and the number says nothing to a Pi owner.
    match error.kind() {
        io::ErrorKind::NotFound => "no such file".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => error.to_string(),
    }
}

/// The kernel files of a real board in `testdata/<board>/` (see its README), as roots.
#[cfg(test)]
pub(crate) fn fixture_roots(board: &str) -> crate::Roots {
    let base = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(board);
    crate::Roots {
        sys: base.join("sys"),
        proc: base.join("proc"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_entries_sort_by_number_and_skip_other_names() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "thermal_zone10",
            "thermal_zone2",
            "cooling_device0",
            "thermal_zoneX",
        ] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
        }
        let found = numbered_entries(dir.path(), "thermal_zone").unwrap();
        let names: Vec<_> = found
            .iter()
            .map(|path| path.file_name().unwrap().to_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["thermal_zone2", "thermal_zone10"]);
    }

    #[test]
    fn a_missing_folder_has_no_entries() {
        let dir = tempfile::tempdir().unwrap();
        assert!(numbered_entries(&dir.path().join("absent"), "hwmon")
            .unwrap()
            .is_empty());
    }
}
