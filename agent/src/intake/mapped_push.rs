//! A passed push file read in place: mapped from the page cache under a read lease (issue
//! 15). Reading a 1.7 MB push into a new buffer cost 1.7-2.5 ms on the router VM's kernel,
//! most of it faulting in fresh pages (the agent gives freed memory back after each push, so
//! every push's buffer is new); mapping the file's cached pages costs a few dozen faults.
//!
//! A mapped file that shrinks under its reader kills the reader (SIGBUS). The read lease
//! (`fcntl(F_SETLEASE, F_RDLCK)`) is what makes the mapping safe: the kernel grants it only
//! while nobody has the file open for writing, and while it is held, an open for writing or a
//! truncate blocks until the agent lets go (when the push is done) or the kernel's lease-break
//! time runs out. The break's signal (SIGIO, whose default action ends the process) is
//! ignored. No lease (the file is open for writing somewhere, a file system without leases):
//! the file is read into memory as before.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::Once;

/// A push file's text mapped under a read lease; unmapped and the lease let go on drop.
pub struct MappedPush {
    ptr: *const u8,
    len: usize,
    file: File,
}

// SAFETY: the mapping is read-only and owned by this value; nothing else writes through it.
unsafe impl Send for MappedPush {}
// SAFETY: as above: shared access is reading only.
unsafe impl Sync for MappedPush {}

impl std::fmt::Debug for MappedPush {
    // Never the content: a push may carry secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MappedPush({} bytes)", self.len)
    }
}

/// Why a file was not mapped: `Fallback` means read it instead; `NotUtf8` is the answer.
#[derive(Debug)]
pub enum NotMapped {
    Fallback(File),
    NotUtf8(usize),
}

impl MappedPush {
    /// Maps `file` (`len` bytes, a regular file) under a read lease, its text checked UTF-8.
    pub fn map(file: File, len: usize) -> Result<MappedPush, NotMapped> {
        if len == 0 {
            return Err(NotMapped::Fallback(file));
        }
        static IGNORE_SIGIO: Once = Once::new();
        IGNORE_SIGIO.call_once(|| {
            // SAFETY: setting a signal's disposition to ignore has no preconditions.
            unsafe {
                libc::signal(libc::SIGIO, libc::SIG_IGN);
            }
        });
        let fd = file.as_raw_fd();
        // SAFETY: fcntl on a descriptor this function owns (through `file`).
        if unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK) } != 0 {
            return Err(NotMapped::Fallback(file));
        }
        // The size again, under the lease: nobody can change it from here on.
        match file.metadata() {
            Ok(m) if m.len() == len as u64 => {}
            _ => {
                unlease(fd);
                return Err(NotMapped::Fallback(file));
            }
        }
        // SAFETY: a fresh read-only shared mapping of `len` bytes of an open regular file.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            unlease(fd);
            return Err(NotMapped::Fallback(file));
        }
        let mapped = MappedPush {
            ptr: ptr as *const u8,
            len,
            file,
        };
        if let Err(e) = std::str::from_utf8(mapped.bytes()) {
            return Err(NotMapped::NotUtf8(e.valid_up_to()));
        }
        Ok(mapped)
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes until drop, and the lease keeps the file
        // from shrinking under them.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// The push text.
    pub fn as_str(&self) -> &str {
        // SAFETY: checked UTF-8 in `map`, and nobody can write the file under the lease.
        unsafe { std::str::from_utf8_unchecked(self.bytes()) }
    }
}

fn unlease(fd: i32) {
    // SAFETY: fcntl on a descriptor the caller owns.
    unsafe {
        libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK);
    }
}

impl Drop for MappedPush {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once; then the lease goes.
        unsafe {
            libc::munmap(self.ptr as *mut libc::c_void, self.len);
        }
        unlease(self.file.as_raw_fd());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    /// A file nobody writes maps; one open for writing is read instead; not UTF-8 is said.
    #[test]
    fn maps_under_a_lease_or_falls_back() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"{\"schema\":1}").unwrap();
        f.flush().unwrap();
        // `f` itself is open for writing: no read lease.
        let r = File::open(f.path()).unwrap();
        assert!(matches!(
            MappedPush::map(r, 12),
            Err(NotMapped::Fallback(_))
        ));
        let path = f.path().to_path_buf();
        drop(f.into_temp_path().keep().unwrap());
        let m = MappedPush::map(File::open(&path).unwrap(), 12)
            .ok()
            .unwrap();
        assert_eq!(m.as_str(), "{\"schema\":1}");
        assert_eq!(format!("{m:?}"), "MappedPush(12 bytes)");
        // Under the lease, the file cannot be opened for writing without a wait: try it
        // without blocking.
        let w = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path);
        assert!(w.is_err(), "opened for writing under a read lease");
        drop(m);
        std::fs::write(&path, b"\xff\xfe").unwrap();
        assert!(matches!(
            MappedPush::map(File::open(&path).unwrap(), 2),
            Err(NotMapped::NotUtf8(0))
        ));
        std::fs::remove_file(&path).unwrap();
    }
}
