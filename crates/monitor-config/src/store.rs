//! The check directory: `available/` holds check files, `enabled/` links to the enabled ones.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use monitor_wire::{CheckId, Subsystem};

use crate::check::{read_config_file, resolve_check_text, Check, CheckFormat};
use crate::defaults::{default_check, DefaultCheck, DEFAULT_CHECKS};
use crate::kind::{rename_fields_to_mender, CheckDefinition, CheckKind, LogCheck};
use crate::problem::{lowercase_first, Problem};
use crate::watch::LogSource;

/// Why a change to the check directory was refused or failed. Each message is one line
/// that says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("\"{id}\" is a built-in default check: disable it with monitorctl disable {} {}, or turn every default off with `default_checks: false` in monitor.yaml", .id.subsystem, .id.name)]
    DefaultCheck { id: CheckId },
    #[error("invalid check name \"{name}\": {}", CHECK_NAME_RULE)]
    InvalidName { name: String },
    #[error("no check \"{id}\" in {}: create it first with monitorctl create {} ...", .dir.display(), .id.subsystem)]
    UnknownCheck { id: CheckId, dir: PathBuf },
    #[error("check \"{id}\" already exists ({}): delete it first or pick another name", .file.display())]
    AlreadyExists { id: CheckId, file: PathBuf },
    #[error("check \"{id}\" is defined twice ({} and {}): delete one of the files", .first.display(), .second.display())]
    Duplicate {
        id: CheckId,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("{}", join_problems(.0))]
    Invalid(Vec<Problem>),
    #[error("{} is a log check but not over docker events (its alert type is not docker_event): address it as log {name}", .file.display())]
    NotDockerEvents { name: String, file: PathBuf },
    #[error("{} is a regular file, not a link into available/: move it into available/ or delete it", .path.display())]
    NotALink { path: PathBuf },
    #[error("{} has no available/ folder: point to Mender's monitor.d folder (usually /etc/mender-monitor/monitor.d)", .path.display())]
    NotAMenderFolder { path: PathBuf },
    /// The OS error is part of the message, not a `source`, so that it is not printed twice.
    #[error("cannot {action} {}: {}", .path.display(), lowercase_first(.error))]
    Io {
        action: &'static str,
        path: PathBuf,
        error: io::Error,
    },
}

fn join_problems(problems: &[Problem]) -> String {
    if problems.is_empty() {
        return "invalid check: fix the definition".to_owned();
    }
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |error| StoreError::Io {
        action,
        path: path.to_owned(),
        error,
    }
}

/// What a check name may hold, for messages.
const CHECK_NAME_RULE: &str = "use at most 200 ASCII letters, digits and '.', '_', '-', '@', '\\', ':', '+', not starting with '.' or '-'";

/// The longest check name: `dockerevents_<name>.yaml` must stay within the 255 bytes of a
/// file name, with room to spare for the temporary file of an atomic write.
const MAX_CHECK_NAME_LENGTH: usize = 200;

/// Whether `name` can name a check: ASCII letters, digits and `._-@\:+`, not starting with
/// `.` or `-`, at most 200 characters. Wide enough for systemd unit names (template
/// instances `getty@tty1`, escaped `foo\x2dbar`, `sys-devices-x.device`), as Mender's file
/// names allow; narrow enough that a name is one file name component (no `/`, no `..`, no
/// hidden or option-like file), one word in `<subsystem> <check>` (no whitespace) and
/// harmless in a terminal (no control characters).
pub fn is_valid_check_name(name: &str) -> bool {
    let allowed = |next: char| {
        next.is_ascii_alphanumeric() || matches!(next, '.' | '_' | '-' | '@' | '\\' | ':' | '+')
    };
    name.len() <= MAX_CHECK_NAME_LENGTH
        && name
            .chars()
            .next()
            .is_some_and(|first| first != '.' && first != '-')
        && name.chars().all(allowed)
}

fn check_name(id: &CheckId) -> Result<(), StoreError> {
    if is_valid_check_name(&id.name) {
        Ok(())
    } else {
        Err(StoreError::InvalidName {
            name: id.name.clone(),
        })
    }
}

/// What a file name in `available/` or `enabled/` says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FileName {
    Check {
        id: CheckId,
        format: CheckFormat,
    },
    /// Not a check file: other extensions, editor backups, hidden and temporary files.
    Ignored,
    /// Looks like a check file but its name cannot be one; the message says how to rename it.
    Invalid(String),
}

pub(crate) fn classify(file_name: &OsStr) -> FileName {
    let Some(name) = file_name.to_str() else {
        let lossy = file_name.to_string_lossy();
        return if lossy.ends_with(".yaml") || lossy.ends_with(".sh") {
            FileName::Invalid(
                "the file name is not valid UTF-8: rename it to <subsystem>_<check>.yaml"
                    .to_owned(),
            )
        } else {
            FileName::Ignored
        };
    };
    if name.starts_with('.') {
        return FileName::Ignored;
    }
    let (stem, format) = if let Some(stem) = name.strip_suffix(".yaml") {
        (stem, CheckFormat::Yaml)
    } else if let Some(stem) = name.strip_suffix(".sh") {
        (stem, CheckFormat::MenderShell)
    } else if let Some(stem) = name.strip_suffix(".yml") {
        return FileName::Invalid(format!(
            "check files end in .yaml: rename the file to {stem}.yaml"
        ));
    } else {
        return FileName::Ignored;
    };
    let extension = format.extension();
    let subsystems: Vec<&str> = Subsystem::ALL.iter().map(|s| s.as_str()).collect();
    let rename = format!(
        "rename the file to <subsystem>_<check>.{extension} with subsystem one of {}",
        subsystems.join(", ")
    );
    let Some((subsystem, check)) = stem.split_once('_') else {
        return FileName::Invalid(format!("no subsystem in the file name: {rename}"));
    };
    let Ok(subsystem) = subsystem.parse::<Subsystem>() else {
        return FileName::Invalid(format!("unknown subsystem \"{subsystem}\": {rename}"));
    };
    if !is_valid_check_name(check) {
        return FileName::Invalid(format!(
            "invalid check name \"{check}\": rename the file, {CHECK_NAME_RULE}"
        ));
    }
    FileName::Check {
        id: CheckId::new(subsystem, check),
        format,
    }
}

/// The entries of a directory, sorted by name; a missing directory is empty.
fn list_dir(dir: &Path) -> io::Result<Vec<(OsString, PathBuf)>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut listed = Vec::new();
    for entry in entries {
        let entry = entry?;
        listed.push((entry.file_name(), entry.path()));
    }
    listed.sort();
    Ok(listed)
}

/// Whether something (a file, a link, even a dangling one) is at `path`.
fn entry_exists(path: &Path) -> Result<bool, StoreError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(io_error("read", path)(error)),
    }
}

/// Writes a check file so that readers see the old file or the whole new one, never a part,
/// and no temporary file is left behind on failure (monitor-store's atomic write), readable
/// by everyone like any file of /etc.
fn write_check_file(path: &Path, contents: &[u8]) -> Result<(), StoreError> {
    monitor_store::write_atomically(path, contents).map_err(|error| match error {
        monitor_store::StoreError::Io {
            action,
            path,
            source,
        } => StoreError::Io {
            action,
            path,
            error: source,
        },
        other => StoreError::Io {
            action: "write",
            path: path.to_owned(),
            error: io::Error::other(other.to_string()),
        },
    })?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).map_err(io_error("write", path))
}

fn create_dir(dir: &Path) -> Result<(), StoreError> {
    fs::create_dir_all(dir).map_err(io_error("create directory", dir))
}

/// Whether a log check file is over docker events: its alert type (`LOG_ALERT_TYPE`, YAML
/// `alert.type`) is `docker_event`. Read leniently, so that a file with an unrelated
/// mistake is still recognised (its problems are reported when it is loaded).
fn is_docker_events_file(file: &Path) -> bool {
    let Ok(text) = read_config_file(file) else {
        return false;
    };
    let docker_event = |kind: Option<&str>| kind.map(str::trim) == Some("docker_event");
    match classify(file.file_name().unwrap_or_default()) {
        FileName::Check {
            format: CheckFormat::MenderShell,
            ..
        } => {
            let (assignments, _) = crate::mender::parse_shell_assignments(&text);
            docker_event(
                assignments
                    .iter()
                    .rev()
                    .find(|assignment| assignment.key == "LOG_ALERT_TYPE")
                    .map(|assignment| assignment.value.as_str()),
            )
        }
        FileName::Check {
            format: CheckFormat::Yaml,
            ..
        } => serde_norway::from_str::<serde_norway::Value>(&text).is_ok_and(|value| {
            docker_event(
                value
                    .get("alert")
                    .and_then(|alert| alert.get("type"))
                    .and_then(serde_norway::Value::as_str),
            )
        }),
        FileName::Ignored | FileName::Invalid(_) => false,
    }
}

/// Every check of a config directory that could be read, and everything wrong with the rest.
#[derive(Debug, Default)]
pub struct LoadedChecks {
    /// Sorted by id.
    pub checks: Vec<Check>,
    /// Sorted by file; the problems of one file in the order they were found. Warnings
    /// ([`Problem::is_warning`]) are about checks that were loaded regardless.
    pub problems: Vec<Problem>,
}

impl LoadedChecks {
    /// The checks that have an entry in enabled/: the ones the agent runs.
    pub fn enabled(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|check| check.enabled)
    }
}

/// The checks of a config directory (`/etc/monitor`): `available/` holds one file per check,
/// `enabled/` an entry (normally a relative symlink) per enabled check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckDir {
    root: PathBuf,
    /// Whether the built-in default checks (`defaults.rs`) count: the agent's and
    /// monitorctl's follow `default_checks` in monitor.yaml.
    default_checks: bool,
}

impl CheckDir {
    /// The checks of `root`, without the default checks.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        CheckDir {
            root: root.into(),
            default_checks: false,
        }
    }

    /// With the built-in default checks (`default_checks` in monitor.yaml) or without.
    pub fn with_default_checks(mut self, on: bool) -> Self {
        self.default_checks = on;
        self
    }

    /// See [`CheckDir::with_default_checks`].
    pub fn set_default_checks(&mut self, on: bool) {
        self.default_checks = on;
    }

    /// The default check of `id` while defaults count and no file of `id` replaces it.
    fn default_in_use(&self, id: &CheckId) -> Result<Option<&'static DefaultCheck>, StoreError> {
        if !self.default_checks {
            return Ok(None);
        }
        match default_check(id) {
            Some(default) if self.existing_entry(id)?.is_none() => Ok(Some(default)),
            _ => Ok(None),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn available_dir(&self) -> PathBuf {
        self.root.join("available")
    }

    pub fn enabled_dir(&self) -> PathBuf {
        self.root.join("enabled")
    }

    /// Every check in available/ and enabled/, parsed and validated. A bad file never hides
    /// the good ones: it becomes a [`Problem`].
    ///
    /// An entry in enabled/ whose name is also in available/ only marks that check enabled;
    /// one without (a file put there by hand) is read itself. A dangling link is a problem
    /// and enables nothing.
    pub fn load(&self) -> LoadedChecks {
        let mut problems = Vec::new();
        let mut list = |dir: PathBuf| {
            list_dir(&dir).unwrap_or_else(|error| {
                problems.push(Problem::in_file(
                    &dir,
                    format!(
                        "cannot read: {}: check the directory's permissions",
                        lowercase_first(&error)
                    ),
                ));
                Vec::new()
            })
        };
        let available = list(self.available_dir());
        let enabled = list(self.enabled_dir());

        let mut sources: BTreeMap<CheckId, Vec<(PathBuf, CheckFormat, OsString)>> = BTreeMap::new();
        let all_available: BTreeSet<&OsString> = available.iter().map(|(name, _)| name).collect();
        for (name, path) in &available {
            match classify(name) {
                FileName::Check { id, format } => {
                    sources
                        .entry(id)
                        .or_default()
                        .push((path.clone(), format, name.clone()))
                }
                FileName::Ignored => {}
                FileName::Invalid(message) => problems.push(Problem::in_file(path, message)),
            }
        }

        let mut enabled_names = BTreeSet::new();
        for (name, path) in &enabled {
            let (id, format) = match classify(name) {
                FileName::Check { id, format } => (id, format),
                FileName::Ignored => continue,
                FileName::Invalid(message) => {
                    // Already reported for the file in available/.
                    if !all_available.contains(name) {
                        problems.push(Problem::in_file(path, message));
                    }
                    continue;
                }
            };
            match fs::metadata(path) {
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {
                    let target = fs::read_link(path)
                        .map(|target| target.display().to_string())
                        .unwrap_or_default();
                    problems.push(Problem::in_file(
                        path,
                        format!(
                            "dangling link to {target}: restore the check file, or remove the link with monitorctl disable {} {}",
                            id.subsystem, id.name
                        ),
                    ));
                    continue;
                }
                Err(error) => {
                    problems.push(Problem::in_file(
                        path,
                        format!(
                            "cannot read: {}: check the file's permissions",
                            lowercase_first(&error)
                        ),
                    ));
                    continue;
                }
            }
            enabled_names.insert(name.clone());
            if !all_available.contains(name) {
                sources
                    .entry(id)
                    .or_default()
                    .push((path.clone(), format, name.clone()));
            }
        }

        let mut checks = Vec::new();
        if self.default_checks {
            for default in DEFAULT_CHECKS {
                let id = default.id();
                // Any file of the id replaces the default, a broken one too (its problem
                // is listed): the user's word wins.
                if sources.contains_key(&id) {
                    continue;
                }
                let file = default.shown_path();
                match resolve_check_text(&id, CheckFormat::Yaml, default.text, &file) {
                    Ok((kind, _)) => checks.push(Check {
                        id,
                        file,
                        format: CheckFormat::Yaml,
                        enabled: true,
                        default: true,
                        kind,
                    }),
                    Err(default_problems) => problems.extend(default_problems),
                }
            }
        }
        for (id, files) in sources {
            if files.len() > 1 {
                // Two files for one id: which one the user meant is a guess, so neither runs.
                let names: Vec<String> = files
                    .iter()
                    .map(|(path, _, _)| path.display().to_string())
                    .collect();
                problems.push(Problem::in_file(
                    &files[0].0,
                    format!(
                        "check \"{id}\" is defined twice ({}): delete one of the files",
                        names.join(" and ")
                    ),
                ));
                continue;
            }
            let Some((file, format, name)) = files.into_iter().next() else {
                continue;
            };
            let text = match read_config_file(&file) {
                Ok(text) => text,
                Err(error) => {
                    problems.push(Problem::in_file(&file, error.to_string()));
                    continue;
                }
            };
            match resolve_check_text(&id, format, &text, &file) {
                Ok((kind, warnings)) => {
                    // The check runs; its warnings are listed with the problems.
                    problems.extend(warnings);
                    checks.push(Check {
                        enabled: enabled_names.contains(&name),
                        default: false,
                        id,
                        file,
                        format,
                        kind,
                    })
                }
                Err(file_problems) => problems.extend(file_problems),
            }
        }
        problems.sort_by(|first, second| first.file.cmp(&second.file));
        checks.sort_by(|first, second| first.id.cmp(&second.id));
        LoadedChecks { checks, problems }
    }

    /// The id a new check is stored under: its own, except that a `dockerevents` check is a
    /// `log` check (`available/log_<check>.yaml`), as Mender stores it (`log_<check>.sh`),
    /// so that `log <check>` addresses it and its alerts and config push say `log <check>`.
    pub fn stored_id(id: &CheckId) -> CheckId {
        match id.subsystem {
            Subsystem::Dockerevents => CheckId::new(Subsystem::Log, id.name.clone()),
            _ => id.clone(),
        }
    }

    /// The check that `<subsystem> <check>` on a command line means. Its own id, except
    /// `dockerevents <check>` when there is no `dockerevents_<check>` file (made by older
    /// versions) but a log check `log_<check>` over docker events (its alert type is
    /// `docker_event`: made by `create dockerevents`, or Mender's): then `log <check>`.
    /// A missing check resolves to itself; the verb then says it does not exist.
    pub fn resolve(&self, id: &CheckId) -> Result<CheckId, StoreError> {
        check_name(id)?;
        if id.subsystem != Subsystem::Dockerevents || self.existing_entry(id)?.is_some() {
            return Ok(id.clone());
        }
        let log = CheckDir::stored_id(id);
        let Some(file) = self.existing_entry(&log)? else {
            return Ok(id.clone());
        };
        if is_docker_events_file(&file) {
            Ok(log)
        } else {
            Err(StoreError::NotDockerEvents {
                name: id.name.clone(),
                file,
            })
        }
    }

    /// Writes `available/<subsystem>_<check>.yaml` atomically, after validating the
    /// definition; a `dockerevents` check is written as a log check (see
    /// [`CheckDir::stored_id`]). Refuses an id that already has a file or an enabled entry
    /// (for `dockerevents`, under either name). Creates available/ and enabled/ if they are
    /// missing. Does not enable the check.
    pub fn create(
        &self,
        id: &CheckId,
        definition: &CheckDefinition,
    ) -> Result<PathBuf, StoreError> {
        check_name(id)?;
        let stored = CheckDir::stored_id(id);
        let file = self
            .available_dir()
            .join(CheckFormat::Yaml.file_name(&stored));
        if !definition.fits(id.subsystem) {
            return Err(StoreError::Invalid(vec![Problem::in_file(
                &file,
                format!(
                    "a {} check cannot be stored as a {} check: create it as {} {}",
                    definition.subsystem(),
                    id.subsystem,
                    definition.subsystem(),
                    id.name
                ),
            )]));
        }
        definition.resolve(&file).map_err(StoreError::Invalid)?;
        // In Mender `log <check>` and `dockerevents <check>` are one file, and the config
        // push names both `<check>.sh`: an older `dockerevents_<check>` takes the name too.
        let older_docker_events = CheckId::new(Subsystem::Dockerevents, stored.name.clone());
        let older = (stored.subsystem == Subsystem::Log).then_some(&older_docker_events);
        for taken in [Some(id), Some(&stored), older].into_iter().flatten() {
            if let Some(existing) = self.existing_entry(taken)? {
                return Err(StoreError::AlreadyExists {
                    id: taken.clone(),
                    file: existing,
                });
            }
        }
        let yaml = definition.to_yaml(id).map_err(|error| {
            StoreError::Invalid(vec![Problem::in_file(
                &file,
                format!("cannot write the check as YAML: {error}"),
            )])
        })?;
        create_dir(&self.available_dir())?;
        create_dir(&self.enabled_dir())?;
        write_check_file(&file, yaml.as_bytes())?;
        Ok(file)
    }

    /// The first file or enabled entry of `id`, in either format.
    fn existing_entry(&self, id: &CheckId) -> Result<Option<PathBuf>, StoreError> {
        for dir in [self.available_dir(), self.enabled_dir()] {
            for format in [CheckFormat::Yaml, CheckFormat::MenderShell] {
                let path = dir.join(format.file_name(id));
                if entry_exists(&path)? {
                    return Ok(Some(path));
                }
            }
        }
        Ok(None)
    }

    /// The check's file in available/ (`.yaml` or Mender's `.sh`), if there is one.
    pub fn find(&self, id: &CheckId) -> Result<Option<PathBuf>, StoreError> {
        check_name(id)?;
        let mut found = Vec::new();
        for format in [CheckFormat::Yaml, CheckFormat::MenderShell] {
            let path = self.available_dir().join(format.file_name(id));
            if entry_exists(&path)? {
                found.push(path);
            }
        }
        let mut found = found.into_iter();
        match (found.next(), found.next()) {
            (Some(first), Some(second)) => Err(StoreError::Duplicate {
                id: id.clone(),
                first,
                second,
            }),
            (first, _) => Ok(first),
        }
    }

    fn unknown(&self, id: &CheckId) -> StoreError {
        StoreError::UnknownCheck {
            id: id.clone(),
            dir: self.available_dir(),
        }
    }

    /// Links `enabled/<file>` to `../available/<file>`. Already enabled is fine; a dangling
    /// link of the same name is replaced. `id` is resolved as [`CheckDir::resolve`] says.
    pub fn enable(&self, id: &CheckId) -> Result<(), StoreError> {
        let id = &self.resolve(id)?;
        if self.default_in_use(id)?.is_some() {
            // A default with no file of its own runs already.
            return Ok(());
        }
        let Some(file) = self.find(id)? else {
            // A check written by hand straight into enabled/ is enabled already.
            for format in [CheckFormat::Yaml, CheckFormat::MenderShell] {
                if fs::metadata(self.enabled_dir().join(format.file_name(id))).is_ok() {
                    return Ok(());
                }
            }
            return Err(self.unknown(id));
        };
        let Some(file_name) = file.file_name() else {
            return Err(self.unknown(id));
        };
        let link = self.enabled_dir().join(file_name);
        match fs::symlink_metadata(&link) {
            Ok(metadata) if metadata.file_type().is_symlink() && fs::metadata(&link).is_err() => {
                fs::remove_file(&link).map_err(io_error("remove", &link))?;
            }
            Ok(_) => return Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(io_error("read", &link)(error)),
        }
        create_dir(&self.enabled_dir())?;
        let target = Path::new("..").join("available").join(file_name);
        match symlink(&target, &link) {
            Ok(()) => Ok(()),
            // Enabled meanwhile by someone else: the result is the same.
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(error) => Err(io_error("create link", &link)(error)),
        }
    }

    /// Removes the check's entry in enabled/. Not enabled is fine. A regular file there (a
    /// check written by hand into enabled/) is moved into available/ rather than lost.
    /// `id` is resolved as [`CheckDir::resolve`] says.
    ///
    /// A default check with no file of its own is disabled by writing its file into
    /// available/ (not enabled): the file replaces the default, so it stays disabled.
    pub fn disable(&self, id: &CheckId) -> Result<(), StoreError> {
        let id = &self.resolve(id)?;
        if let Some(default) = self.default_in_use(id)? {
            create_dir(&self.available_dir())?;
            let file = self.available_dir().join(default.file_name);
            return write_check_file(&file, default.text.as_bytes());
        }
        let mut known = self.find(id)?.is_some();
        for format in [CheckFormat::Yaml, CheckFormat::MenderShell] {
            let file_name = format.file_name(id);
            let link = self.enabled_dir().join(&file_name);
            let metadata = match fs::symlink_metadata(&link) {
                Ok(metadata) => metadata,
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(io_error("read", &link)(error)),
            };
            known = true;
            if metadata.file_type().is_symlink() {
                fs::remove_file(&link).map_err(io_error("remove", &link))?;
                continue;
            }
            let available = self.available_dir().join(&file_name);
            if metadata.is_dir() || entry_exists(&available)? {
                return Err(StoreError::NotALink { path: link });
            }
            create_dir(&self.available_dir())?;
            fs::rename(&link, &available).map_err(io_error("move", &link))?;
        }
        if known {
            Ok(())
        } else {
            Err(self.unknown(id))
        }
    }

    /// Removes the check's enabled entry and its file (both formats, if both exist).
    /// `id` is resolved as [`CheckDir::resolve`] says.
    ///
    /// A default check with no file of its own cannot be deleted (disable it); deleting
    /// the file that replaces a default brings the default back.
    pub fn delete(&self, id: &CheckId) -> Result<(), StoreError> {
        let id = &self.resolve(id)?;
        if self.default_in_use(id)?.is_some() {
            return Err(StoreError::DefaultCheck { id: id.clone() });
        }
        let mut found = false;
        // Links first, so that an interrupted delete leaves no dangling link.
        for dir in [self.enabled_dir(), self.available_dir()] {
            for format in [CheckFormat::Yaml, CheckFormat::MenderShell] {
                let path = dir.join(format.file_name(id));
                if entry_exists(&path)? {
                    found = true;
                    fs::remove_file(&path).map_err(io_error("remove", &path))?;
                }
            }
        }
        if found {
            Ok(())
        } else {
            Err(self.unknown(id))
        }
    }
}

/// What [`import_mender`] did.
#[derive(Debug, Default)]
pub struct ImportReport {
    /// Converted and written, in id order.
    pub imported: Vec<ImportedCheck>,
    /// Already present in the target directory, left as they are.
    pub skipped: Vec<SkippedCheck>,
    /// Mender files that could not be converted; the others were imported regardless.
    pub problems: Vec<Problem>,
    /// What was left out of checks that were imported (a key Mender ignores too).
    pub warnings: Vec<Problem>,
}

/// One Mender check written as our YAML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedCheck {
    pub id: CheckId,
    /// The new file in available/.
    pub file: PathBuf,
    /// Whether it was enabled in the Mender folder, and so is enabled here.
    pub enabled: bool,
    /// The command of an `@command` source, which monitord runs (`sh -c`, as its own user)
    /// once the check is enabled: worth a look before enabling an import.
    pub command: Option<String>,
}

/// A Mender check not imported because the target already has one of that id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedCheck {
    pub id: CheckId,
    /// What is in the way.
    pub existing: PathBuf,
}

/// Imports a Mender `monitor.d` folder (`available/*.sh`, `enabled/` links): each check file
/// becomes our YAML under the same id, and enabled checks are enabled again.
///
/// Ids that already exist in `into` are skipped and reported; a file that does not convert
/// is reported and the others are imported anyway. Only I/O errors on `into` stop the import.
/// Enabled links are recognised by name, so a copy of a Mender folder whose absolute links
/// no longer resolve imports correctly.
pub fn import_mender(from: &Path, into: &CheckDir) -> Result<ImportReport, StoreError> {
    let available_dir = from.join("available");
    if !available_dir.is_dir() {
        return Err(StoreError::NotAMenderFolder {
            path: from.to_owned(),
        });
    }
    let enabled_dir = from.join("enabled");
    let available = list_dir(&available_dir).map_err(io_error("read", &available_dir))?;
    let enabled = list_dir(&enabled_dir).map_err(io_error("read", &enabled_dir))?;
    let enabled_names: BTreeSet<&OsString> = enabled.iter().map(|(name, _)| name).collect();
    let available_names: BTreeSet<&OsString> = available.iter().map(|(name, _)| name).collect();

    let mut report = ImportReport::default();
    let mut sources: BTreeMap<CheckId, (PathBuf, &OsString)> = BTreeMap::new();
    let hand_enabled = enabled
        .iter()
        .filter(|(name, _)| !available_names.contains(name));
    for (name, path) in available.iter().chain(hand_enabled) {
        match classify(name) {
            FileName::Check {
                id,
                format: CheckFormat::MenderShell,
            } => {
                if fs::metadata(path).is_err() {
                    report.problems.push(Problem::in_file(
                        path,
                        "dangling link and no such check in available/: nothing to import, remove the link",
                    ));
                    continue;
                }
                sources.insert(id, (path.clone(), name));
            }
            FileName::Check { .. } | FileName::Ignored => {}
            FileName::Invalid(message) => report.problems.push(Problem::in_file(path, message)),
        }
    }

    for (id, (path, name)) in sources {
        // A hand-written `dockerevents_<check>.sh` becomes a log check, as create makes it.
        let id = CheckDir::stored_id(&id);
        if let Some(existing) = into.existing_entry(&id)? {
            report.skipped.push(SkippedCheck { id, existing });
            continue;
        }
        let text = match read_config_file(&path) {
            Ok(text) => text,
            Err(error) => {
                report
                    .problems
                    .push(Problem::in_file(&path, error.to_string()));
                continue;
            }
        };
        let (definition, warnings) =
            match CheckDefinition::from_mender_shell_with_warnings(id.subsystem, &text, &path) {
                Ok(converted) => converted,
                Err(problems) => {
                    report.problems.extend(problems);
                    continue;
                }
            };
        // Validate against the Mender file, so that problems name it and its keys.
        let command = match definition.resolve(&path) {
            Ok(CheckKind::Log(LogCheck {
                source: LogSource::Command(command),
                ..
            })) => Some(command),
            Ok(_) => None,
            Err(problems) => {
                report.problems.extend(
                    problems
                        .into_iter()
                        .map(|problem| rename_fields_to_mender(id.subsystem, problem)),
                );
                continue;
            }
        };
        let file = into.create(&id, &definition)?;
        let is_enabled = enabled_names.contains(name);
        if is_enabled {
            into.enable(&id)?;
        }
        report.warnings.extend(warnings);
        report.imported.push(ImportedCheck {
            id,
            file,
            enabled: is_enabled,
            command,
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests;
