//! The data directory (`serve --data`, `demo --data`) is the daemon's own: everything
//! written under it is owner-only (directories 0700, files 0600) whatever the umask, and
//! a directory that another user owns or can write is refused rather than used.

use anyhow::bail;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// Makes `dir` ready for this process's state: sets the process's umask to 077 (sled
/// and every other writer then create owner-only files), creates `dir` 0700 if it is
/// missing, refuses it when another user owns it or others can write it, and takes
/// away what others could read of files written before (an older ringleader's).
pub fn own(dir: &Path) -> anyhow::Result<()> {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| {
                    anyhow::anyhow!("failed to create the data directory {}: {e}", dir.display())
                })?;
            return Ok(());
        }
        Err(e) => bail!("cannot read the data directory {}: {e}", dir.display()),
        Ok(meta) if !meta.is_dir() => bail!(
            "the data directory {} is not a directory (a link or a file); give a directory of this user's",
            dir.display()
        ),
        Ok(meta) => {
            let me = rustix::process::geteuid().as_raw();
            if meta.uid() != me {
                bail!(
                    "the data directory {} belongs to uid {}, not to this user (uid {me}): another user could change the rollouts' state; use a directory of your own, or `chown -R {me} {}`",
                    dir.display(),
                    meta.uid(),
                    dir.display()
                );
            }
            if meta.mode() & 0o022 != 0 {
                bail!(
                    "the data directory {} can be written by other users (mode {:o}): they could change the rollouts' state; make it yours alone: `chmod 700 {}`",
                    dir.display(),
                    meta.mode() & 0o7777,
                    dir.display()
                );
            }
        }
    }
    let tightened = tighten(dir);
    if tightened > 0 {
        tracing::warn!(
            "made {tightened} files and directories under {} owner-only (they were readable by others)",
            dir.display()
        );
    }
    Ok(())
}

/// Takes group and other permissions off everything under `dir`; returns how many
/// entries changed. Links are not followed.
fn tighten(dir: &Path) -> usize {
    let mut changed = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0
            && std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o700))
                .is_ok()
        {
            changed += 1;
        }
        if meta.is_dir()
            && let Ok(entries) = std::fs::read_dir(&path)
        {
            stack.extend(entries.flatten().map(|e| e.path()));
        }
    }
    changed
}
