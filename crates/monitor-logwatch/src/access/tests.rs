use super::*;
use std::os::unix::fs::{symlink, PermissionsExt};

const NOBODY: u32 = 65534;

/// Tests that hand files to another user need root (or CAP_CHOWN): they fail in CI
/// without it, and are skipped elsewhere with a reason.
fn can_chown() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "this test hands files to uid {NOBODY} and needs root: run the tests as root in CI"
    );
    eprintln!("skipped: handing files to uid {NOBODY} needs root");
    false
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn lchown(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
}

/// A fresh folder that only root may change (under a sticky /tmp).
fn root_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o755);
    dir
}

fn only_root() -> Trusted {
    Trusted { uids: vec![0] }
}

fn account_of(uid: u32, groups: &[u32]) -> Account {
    Account {
        uid,
        groups: groups.to_vec(),
    }
}

#[test]
fn the_owner_class_decides_even_when_others_may_read() {
    // Like the kernel: an owner without u+r cannot read, though "other" could.
    assert!(!permits(&account_of(7, &[]), 7, 9, 0o044, 4));
    assert!(permits(&account_of(8, &[]), 7, 9, 0o044, 4));
    assert!(permits(&account_of(8, &[9]), 7, 9, 0o040, 4));
    assert!(!permits(&account_of(8, &[9]), 7, 9, 0o404, 4));
    assert!(permits(&account_of(7, &[]), 7, 9, 0o600, 4));
    assert!(permits(&account_of(8, &[]), 7, 9, 0o711, 1));
}

#[test]
fn a_folder_is_controlled_by_its_owner_and_by_writers_without_the_sticky_bit() {
    use Controller::*;
    assert_eq!(folder_controllers(0, 0, 0o755), vec![User(0)]);
    assert_eq!(folder_controllers(5, 4, 0o775), vec![User(5), Group(4)]);
    assert_eq!(folder_controllers(0, 4, 0o777), vec![User(0), Anyone]);
    // /tmp: anyone may add names, but only an entry's owner may replace it.
    assert_eq!(folder_controllers(0, 0, 0o1777), vec![User(0)]);
}

#[test]
fn a_path_through_root_folders_to_a_root_file_is_controlled_by_nobody_else() {
    if !can_chown() {
        return;
    }
    let dir = root_folder();
    let file = dir.path().join("app.log");
    fs::write(&file, "").unwrap();
    let walk = who_controls(&file, &only_root()).unwrap();
    assert_eq!(walk.controls, vec![]);
    assert_eq!(walk.resolved, file);
}

#[test]
fn a_folder_a_symlink_and_a_file_of_another_user_each_give_them_control() {
    if !can_chown() {
        return;
    }
    let dir = root_folder();
    let theirs = dir.path().join("theirs");
    fs::create_dir(&theirs).unwrap();
    lchown(&theirs, NOBODY);
    let target = dir.path().join("target.log");
    fs::write(&target, "").unwrap();
    lchown(&target, NOBODY);
    let link = theirs.join("app.log");
    symlink(&target, &link).unwrap();
    lchown(&link, NOBODY);

    let walk = who_controls(&link, &only_root()).unwrap();
    let controls: Vec<(Controller, &Path)> = walk
        .controls
        .iter()
        .map(|control| (control.who, control.through.as_path()))
        .collect();
    assert_eq!(
        controls,
        vec![
            (Controller::User(NOBODY), theirs.as_path()),
            (Controller::User(NOBODY), link.as_path()),
            (Controller::User(NOBODY), target.as_path()),
        ]
    );
    assert_eq!(walk.resolved, target);
}

#[test]
fn relative_symlinks_and_dot_dot_resolve_like_the_kernel() {
    if !can_chown() {
        return;
    }
    let dir = root_folder();
    let open = dir.path().join("open");
    fs::create_dir(&open).unwrap();
    chmod(&open, 0o777);
    fs::create_dir(dir.path().join("logs")).unwrap();
    fs::write(dir.path().join("logs/app.log"), "").unwrap();
    symlink("../logs/./app.log", open.join("link")).unwrap();

    let walk = who_controls(&open.join("link"), &only_root()).unwrap();
    assert_eq!(walk.resolved, dir.path().join("logs/app.log"));
    assert_eq!(
        walk.controls,
        vec![Control {
            who: Controller::Anyone,
            through: open
        }]
    );
}

#[test]
fn a_symlink_loop_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    symlink(dir.path().join("b"), dir.path().join("a")).unwrap();
    symlink(dir.path().join("a"), dir.path().join("b")).unwrap();
    let error = who_controls(&dir.path().join("a"), &only_root()).unwrap_err();
    assert_eq!(error.raw_os_error(), Some(libc::ELOOP));
}

#[test]
fn a_link_in_a_folder_of_another_user_to_a_root_only_file_is_refused_without_reading_it() {
    if !can_chown() {
        return;
    }
    let dir = root_folder();
    let secret = dir.path().join("secret");
    fs::write(&secret, "password=hunter2\n").unwrap();
    chmod(&secret, 0o600);
    let theirs = dir.path().join("theirs");
    fs::create_dir(&theirs).unwrap();
    lchown(&theirs, NOBODY);
    let link = theirs.join("app.log");
    symlink(&secret, &link).unwrap();

    let error = open_log_file(&link).unwrap_err();
    let OpenError::Refused(refusal) = &error else {
        panic!("expected a refusal, got {error:?}");
    };
    assert_eq!(refusal.control.who, Controller::User(NOBODY));
    assert_eq!(refusal.control.through, theirs);
    let message = error.message(&link);
    assert!(
        message.starts_with(&format!("{} is not read: ", link.display())),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "cannot read {} themselves (owner root, group root, mode 0600)",
            secret.display()
        )),
        "{message}"
    );
    assert!(
        message.contains(&format!("make {} writable by root only", theirs.display())),
        "{message}"
    );

    // Readable by them: nothing they could not read anyway.
    chmod(&secret, 0o644);
    assert!(open_log_file(&link).is_ok());
    // Readable, but behind a folder closed to them.
    let closed = dir.path().join("closed");
    fs::create_dir(&closed).unwrap();
    chmod(&closed, 0o700);
    let hidden = closed.join("hidden");
    fs::write(&hidden, "").unwrap();
    chmod(&hidden, 0o644);
    fs::remove_file(&link).unwrap();
    symlink(&hidden, &link).unwrap();
    let error = open_log_file(&link).unwrap_err();
    assert!(
        error.message(&link).contains(&format!(
            "the folder {} is closed to them",
            closed.display()
        )),
        "{}",
        error.message(&link)
    );
}

#[test]
fn the_file_of_the_user_who_controls_the_folder_is_theirs_to_read() {
    if !can_chown() {
        return;
    }
    let dir = root_folder();
    let theirs = dir.path().join("theirs");
    fs::create_dir(&theirs).unwrap();
    lchown(&theirs, NOBODY);
    let file = theirs.join("app.log");
    fs::write(&file, "").unwrap();
    chmod(&file, 0o600);
    lchown(&file, NOBODY);
    assert!(open_log_file(&file).is_ok());
}

#[test]
fn a_fifo_is_refused_at_once_and_a_link_to_a_device_is_never_opened() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let name = CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o644) }, 0);
    // No writer: a plain open would wait here for ever.
    let error = open_log_file(&fifo).unwrap_err();
    assert!(
        matches!(error, OpenError::NotRegular { kind: "a FIFO" }),
        "{error:?}"
    );
    assert_eq!(
        error.message(&fifo),
        format!(
            "{0} is a FIFO, not a regular file, and is not read; point the check at a log file, or replace {0} with one",
            fifo.display()
        )
    );

    let link = dir.path().join("zero");
    symlink("/dev/zero", &link).unwrap();
    let error = open_log_file(&link).unwrap_err();
    assert!(
        matches!(
            error,
            OpenError::NotRegular {
                kind: "a character device"
            }
        ),
        "{error:?}"
    );
    assert!(open_log_file(dir.path()).is_err());
}
