//! A push file handed over the socket as an open file descriptor (`SCM_RIGHTS`), not as its
//! bytes (issue 15). `vr-agent apply FILE` used to read the whole file, check it, and copy it
//! through the socket, where the agent read it back in 8 KiB steps: for a 10,000-rule push
//! (1.7 MB) that was about 4 ms of the 10k "+1 forward" push, in both processes. Now the CLI
//! opens the file and sends the descriptor with its request line; the agent maps the file in
//! place ([`MappedPush`]) or, where it cannot, reads it once into a buffer of its size.
//!
//! The agent reads only what the client could open itself (the socket is root's, mode 0600),
//! only a regular file (a FIFO or a device could block the reader), and at most one push's
//! size limit. Every other descriptor a client attaches is closed unread. The descriptor must
//! come with the request line's first bytes (one `sendmsg`): the agent reads the rest of a
//! connection with plain reads, which drop descriptors.
//!
//! `recvmsg` is called here rather than through `nix`: nix refuses to walk a control buffer
//! the kernel truncated (`MSG_CTRUNC`, a client sending more descriptors than it has room
//! for), which would leave the descriptors that did arrive open and owned by nobody.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;

use tokio::io::Interest;
use tokio::net::UnixStream;

use super::mapped_push::{MappedPush, NotMapped};

/// File descriptors accepted with one message; further ones are closed (see [`recv_with_fd`]).
const MAX_FDS: usize = 4;

/// Reads what the client sent first (up to `limit` bytes) and the first descriptor that came
/// with it, waiting until something arrives. An empty buffer: the client closed.
pub async fn first_read(
    stream: &UnixStream,
    limit: usize,
) -> std::io::Result<(Vec<u8>, Option<OwnedFd>)> {
    let mut buf = vec![0u8; limit];
    loop {
        stream.readable().await?;
        match stream.try_io(Interest::READABLE, || {
            recv_with_fd(stream.as_raw_fd(), &mut buf)
        }) {
            Ok((n, fd)) => {
                buf.truncate(n);
                return Ok((buf, fd));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

/// A message header of one buffer and `control_len` bytes of `control` (u64 elements: the
/// control buffer must be aligned for `cmsghdr`). The header points into both: use it while
/// they live.
fn message(iov: &mut libc::iovec, control: &mut [u64], control_len: usize) -> libc::msghdr {
    debug_assert!(control_len <= std::mem::size_of_val(control));
    // SAFETY: a zeroed msghdr is valid (no buffers, no flags).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control_len as _;
    msg
}

/// `recvmsg(2)` of up to `buf.len()` bytes with room for at least [`MAX_FDS`] descriptors;
/// keeps the first, closes the rest (every received descriptor is owned from here on).
fn recv_with_fd(sock: RawFd, buf: &mut [u8]) -> std::io::Result<(usize, Option<OwnedFd>)> {
    let mut control = [0u64; 16];
    let control_len = std::mem::size_of_val(&control);
    // SAFETY: CMSG_SPACE only computes a length.
    let needed = unsafe { libc::CMSG_SPACE((MAX_FDS * std::mem::size_of::<RawFd>()) as u32) };
    debug_assert!(needed as usize <= control_len);
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut msg = message(&mut iov, &mut control, control_len);
    // SAFETY: `msg` points at live buffers of the lengths it names.
    let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut fds = Vec::new();
    // SAFETY: the CMSG_* walk stays within `msg_controllen` as the kernel filled it.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                let header = libc::CMSG_LEN(0) as usize;
                let count = ((*cmsg).cmsg_len as usize - header) / std::mem::size_of::<RawFd>();
                for i in 0..count {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    // The rest close when `fds` drops.
    let first = if fds.is_empty() {
        None
    } else {
        Some(fds.swap_remove(0))
    };
    Ok((n as usize, first))
}

/// `sendmsg(2)` of `data` with `file`'s descriptor attached: what [`first_read`] receives.
/// Returns how many bytes of `data` went (the caller writes the rest as usual).
pub async fn send_with_fd(stream: &UnixStream, data: &[u8], file: &File) -> std::io::Result<usize> {
    loop {
        stream.writable().await?;
        match stream.try_io(Interest::WRITABLE, || {
            sendmsg_fd(stream.as_raw_fd(), data, file.as_raw_fd())
        }) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

fn sendmsg_fd(sock: RawFd, data: &[u8], fd: RawFd) -> std::io::Result<usize> {
    let mut control = [0u64; 4];
    // SAFETY: CMSG_SPACE only computes a length.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut _,
        iov_len: data.len(),
    };
    let msg = message(&mut iov, &mut control, space);
    // SAFETY: the control buffer holds one header and one descriptor (`space` bytes).
    let n = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
        libc::CMSG_DATA(cmsg).cast::<RawFd>().write_unaligned(fd);
        libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL)
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Why a passed file cannot be read as a push: the answer's text (names the push, never its
/// content).
pub type Refusal = String;

/// A passed push's text: mapped in place (see [`MappedPush`]) or read into memory.
pub enum PushText {
    Mapped(MappedPush),
    Read(String),
}

impl PushText {
    pub fn as_str(&self) -> &str {
        match self {
            PushText::Mapped(m) => m.as_str(),
            PushText::Read(s) => s,
        }
    }
}

impl std::fmt::Debug for PushText {
    // Never the content: a push may carry secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PushText({} bytes)", self.as_str().len())
    }
}

/// A passed push file whole: a regular file of at most `limit` bytes, UTF-8; mapped where a
/// read lease can be had, else read.
pub fn read_push(fd: OwnedFd, name: &str, limit: usize) -> Result<PushText, Refusal> {
    let file = File::from(fd);
    let meta = file
        .metadata()
        .map_err(|e| format!("{name}: cannot read the passed file: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{name}: the passed file is not a regular file"));
    }
    let too_large = |n: u64| {
        format!("{name}: (document): push of {n} bytes is larger than the {limit}-byte limit")
    };
    if meta.len() > limit as u64 {
        return Err(too_large(meta.len()));
    }
    let not_utf8 = |at: usize| format!("{name}: (document): not UTF-8 at byte {at}");
    let file = match MappedPush::map(file, meta.len() as usize) {
        Ok(m) => return Ok(PushText::Mapped(m)),
        Err(NotMapped::NotUtf8(at)) => return Err(not_utf8(at)),
        Err(NotMapped::Fallback(file)) => file,
    };
    // The whole file, from its start whatever the descriptor's offset, in one read into a
    // buffer of its size (`read_to_end` through `take` probed in doubling steps from 8 KiB:
    // nine reads); fewer bytes than its length, or more, mean it changed while being read.
    let mut bytes = vec![0u8; meta.len() as usize];
    file.read_exact_at(&mut bytes, 0)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                format!("{name}: the file shrank while it was read")
            }
            _ => format!("{name}: cannot read the passed file: {e}"),
        })?;
    if matches!(file.read_at(&mut [0u8; 1], meta.len()), Ok(1)) {
        return Err(format!("{name}: the file grew while it was read"));
    }
    String::from_utf8(bytes)
        .map(PushText::Read)
        .map_err(|e| not_utf8(e.utf8_error().valid_up_to()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A descriptor sent with a line arrives with it; the file reads back whole.
    #[tokio::test]
    async fn a_file_passes_with_its_line() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"{\"schema\":1}").unwrap();
        let sent = send_with_fd(&a, b"line\n", &File::open(f.path()).unwrap())
            .await
            .unwrap();
        assert_eq!(sent, 5);
        let (bytes, fd) = first_read(&b, 1024).await.unwrap();
        assert_eq!(bytes, b"line\n");
        let text = read_push(fd.expect("a descriptor came"), "p.json", 100).unwrap();
        assert_eq!(text.as_str(), "{\"schema\":1}");
        f.write_all(&[0xff]).unwrap();
        send_with_fd(&a, b"x", &File::open(f.path()).unwrap())
            .await
            .unwrap();
        let (_, fd) = first_read(&b, 1024).await.unwrap();
        let err = read_push(fd.unwrap(), "p.json", 100).unwrap_err();
        assert!(err.contains("(document): not UTF-8 at byte 12"), "{err}");
    }

    /// Without a descriptor the bytes still arrive; a FIFO is refused unread.
    #[tokio::test]
    async fn plain_bytes_and_non_files() {
        let (a, b) = UnixStream::pair().unwrap();
        a.writable().await.unwrap();
        a.try_write(b"plain").unwrap();
        let (bytes, fd) = first_read(&b, 1024).await.unwrap();
        assert_eq!(bytes, b"plain");
        assert!(fd.is_none());
        let (r, _w) = std::io::pipe().unwrap();
        let err = read_push(OwnedFd::from(r), "p.json", 100).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
    }
}
