//! Writing FRR's config file as root into a directory another user owns (`/etc/frr` belongs to
//! `frr`): that user could plant a symlink or a file at any name it can predict. So the new
//! file is created at an unpredictable name with `O_CREAT|O_EXCL|O_NOFOLLOW` (never an existing
//! file, never through a link), mode 0600 from the start, its owner and mode set on the open
//! descriptor, then synced and renamed over the config. Nothing touches the path after the
//! rename.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of the config: FRR reads it as its own user; keys are in it (never world-readable).
pub const MODE: u32 = 0o640;

/// Replaces `path` with `body`, owned like the file it replaces (or, for a new file, like its
/// directory), mode [`MODE`].
pub fn write_config(path: &Path, body: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let dir_meta = std::fs::metadata(dir)?;
    if !dir_meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("{} is not a directory", dir.display()),
        ));
    }
    // Owner of the file being replaced, when it is a plain file (a link's owner means nothing).
    let (uid, gid) = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() => (m.uid(), m.gid()),
        _ => (dir_meta.uid(), dir_meta.gid()),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "frr.conf".into());
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .rand_bytes(16)
        .make_in(dir, |p| {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(p)
        })?;
    let f: &File = tmp.as_file();
    std::os::unix::fs::fchown(f, Some(uid), Some(gid))?;
    f.set_permissions(std::fs::Permissions::from_mode(MODE))?;
    let mut w: &File = f;
    w.write_all(body)?;
    f.sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_through_a_new_file_and_never_follows_a_planted_link() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("victim");
        std::fs::write(&target, "untouched").unwrap();
        let conf = d.path().join("frr.conf");
        // A symlink planted at the config's name is replaced, its target left alone.
        std::os::unix::fs::symlink(&target, &conf).unwrap();
        write_config(&conf, b"router ospf\n").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "untouched");
        let m = std::fs::symlink_metadata(&conf).unwrap();
        assert!(m.file_type().is_file());
        assert_eq!(m.mode() & 0o777, MODE);
        assert_eq!(std::fs::read_to_string(&conf).unwrap(), "router ospf\n");
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        write_config(&conf, b"again\n").unwrap();
        assert_eq!(std::fs::read_to_string(&conf).unwrap(), "again\n");
    }

    #[test]
    fn a_new_file_belongs_to_the_directory_owner() {
        let d = tempfile::tempdir().unwrap();
        // Only root can give the directory away; as another user this part proves nothing.
        if std::os::unix::fs::chown(d.path(), Some(65534), Some(65534)).is_err() {
            eprintln!("skip: not root, cannot chown");
            return;
        }
        let conf = d.path().join("frr.conf");
        write_config(&conf, b"x\n").unwrap();
        let m = std::fs::metadata(&conf).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (65534, 65534, MODE));
    }
}
