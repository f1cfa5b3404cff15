//! The agent's folders are private: nobody else may read the alerts (they carry log lines)
//! or replace what the agent reads back at start (offsets, alert state).

use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use anyhow::bail;

/// Refuse a state or runtime folder that another user could swap out: a folder on the way
/// that others may write to (without the sticky bit, which keeps them from replacing what
/// is not theirs), a folder or link on the way owned by another user, or the folder itself
/// not the agent's.
pub fn refuse_shared_location(folder: &Path) -> anyhow::Result<()> {
    let agent = agent_uid();
    let trusted = |uid: u32| uid == 0 || uid == agent;
    let mut on_the_way = PathBuf::new();
    let mut to_check: Vec<PathBuf> = Vec::new();
    for component in folder.components() {
        on_the_way.push(component);
        if matches!(component, Component::RootDir) {
            continue;
        }
        to_check.push(on_the_way.clone());
    }
    // The lexical path (links included) and the path it resolves to.
    if let Ok(resolved) = folder.canonicalize() {
        let mut resolved_on_the_way = PathBuf::from("/");
        for component in resolved.components().skip(1) {
            resolved_on_the_way.push(component);
            to_check.push(resolved_on_the_way.clone());
        }
    }
    for path in &to_check {
        let Ok(link) = std::fs::symlink_metadata(path) else {
            continue;
        };
        if link.file_type().is_symlink() && !trusted(link.uid()) {
            bail!(
                "{} is a link owned by uid {}, who could point {} elsewhere; use a folder whose every parent belongs to root",
                path.display(),
                link.uid(),
                folder.display()
            );
        }
    }
    let parents = to_check.iter().filter(|path| path.as_path() != folder);
    for parent in parents {
        let Ok(metadata) = std::fs::metadata(parent) else {
            continue;
        };
        let mode = metadata.mode();
        let sticky = mode & 0o1000 != 0;
        let others_write = mode & 0o002 != 0 || (mode & 0o020 != 0 && metadata.gid() != 0);
        if (others_write && !sticky) || !trusted(metadata.uid()) {
            bail!(
                "{} sits in {}, which another user can change (owner uid {}, mode {:o}); other users could replace the agent's state: use a folder such as /var/lib/monitor, or make {} belong to root and not writable by others",
                folder.display(),
                parent.display(),
                metadata.uid(),
                mode & 0o7777,
                parent.display()
            );
        }
    }
    let metadata = std::fs::metadata(folder)?;
    if !trusted(metadata.uid()) {
        bail!(
            "{} belongs to uid {}, not to the agent's user; `chown` it to the agent's user or use another folder",
            folder.display(),
            metadata.uid()
        );
    }
    Ok(())
}

fn agent_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}
