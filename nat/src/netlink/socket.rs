//! NETLINK_NETFILTER socket: one `sendmsg` per batch, then every ACK read and checked.

use std::collections::BTreeMap;
use std::io;

/// Netlink socket in the caller's network namespace.
pub struct Socket {
    fd: libc::c_int,
}

impl Drop for Socket {
    fn drop(&mut self) {
        // SAFETY: fd opened in `open`, closed once.
        unsafe { libc::close(self.fd) };
    }
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl Socket {
    /// Opens the socket; `buf` sizes both buffers (FORCE variants: above rmem_max, which
    /// big batches and their ACK flood need; root has CAP_NET_ADMIN anyway).
    pub fn open(buf: usize) -> io::Result<Socket> {
        // SAFETY: plain syscalls on an fd we own.
        unsafe {
            let fd = check(libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_NETFILTER,
            ))?;
            let s = Socket { fd };
            let size = buf.min(i32::MAX as usize) as libc::c_int;
            for opt in [libc::SO_SNDBUFFORCE, libc::SO_RCVBUFFORCE] {
                let r = libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    opt,
                    &size as *const _ as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as u32,
                );
                if r < 0 {
                    // Without CAP_NET_ADMIN fall back to the capped variant.
                    let plain = if opt == libc::SO_SNDBUFFORCE {
                        libc::SO_SNDBUF
                    } else {
                        libc::SO_RCVBUF
                    };
                    libc::setsockopt(
                        fd,
                        libc::SOL_SOCKET,
                        plain,
                        &size as *const _ as *const libc::c_void,
                        std::mem::size_of::<libc::c_int>() as u32,
                    );
                }
            }
            // A kernel that never answers must not hang the agent.
            let tv = libc::timeval {
                tv_sec: 10,
                tv_usec: 0,
            };
            check(libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as u32,
            ))?;
            let mut addr: libc::sockaddr_nl = std::mem::zeroed();
            addr.nl_family = libc::AF_NETLINK as u16;
            check(libc::bind(
                fd,
                &addr as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            ))?;
            Ok(s)
        }
    }

    /// One `sendmsg` of all the buffers.
    pub fn send(&self, iov: &mut [libc::iovec]) -> io::Result<usize> {
        // SAFETY: the iovecs point into a live batch; the kernel address is zeroed = pid 0.
        unsafe {
            let mut addr: libc::sockaddr_nl = std::mem::zeroed();
            addr.nl_family = libc::AF_NETLINK as u16;
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_name = &mut addr as *mut _ as *mut libc::c_void;
            msg.msg_namelen = std::mem::size_of::<libc::sockaddr_nl>() as u32;
            msg.msg_iov = iov.as_mut_ptr();
            msg.msg_iovlen = iov.len();
            let n = libc::sendmsg(self.fd, &msg, 0);
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        }
    }

    /// Reads answers until every sequence number in `pending` has its ACK or error.
    /// Returns the errors (seq -> errno). Answers to other sequence numbers (BEGIN and
    /// END, acknowledged by kernels >= 6.10 only) are accepted and ignored.
    pub fn acks(
        &self,
        mut pending: std::collections::BTreeSet<u32>,
    ) -> io::Result<BTreeMap<u32, i32>> {
        let mut errors = BTreeMap::new();
        let mut buf = vec![0u8; 1 << 20];
        while !pending.is_empty() {
            // SAFETY: reading into our own buffer.
            let n =
                unsafe { libc::recv(self.fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut off = 0usize;
            let n = n as usize;
            let hdr = std::mem::size_of::<libc::nlmsghdr>();
            while off + hdr <= n {
                // SAFETY: bounds checked above; read_unaligned copes with any offset.
                let h: libc::nlmsghdr =
                    unsafe { std::ptr::read_unaligned(buf[off..].as_ptr() as *const _) };
                let len = h.nlmsg_len as usize;
                if len < hdr || off + len > n {
                    break;
                }
                if h.nlmsg_type == libc::NLMSG_ERROR as u16 && len >= hdr + 4 {
                    let code =
                        i32::from_ne_bytes(buf[off + hdr..off + hdr + 4].try_into().unwrap());
                    pending.remove(&h.nlmsg_seq);
                    if code != 0 {
                        errors.insert(h.nlmsg_seq, -code);
                    }
                }
                off += (len + 3) & !3;
            }
            // After a failure the kernel aborts the batch; once it has said so and
            // nothing else arrives we stop waiting (see `acks_after_error`).
            if !errors.is_empty() && self.nothing_more()? {
                break;
            }
        }
        Ok(errors)
    }

    /// One datagram from the kernel (a single-message answer such as `NEWGEN`).
    pub fn recv_once(&self) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; 8192];
        // SAFETY: reading into our own buffer.
        let n = unsafe { libc::recv(self.fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        buf.truncate(n as usize);
        Ok(buf)
    }

    /// One datagram of up to `max` bytes (a dump's answers: the kernel fills each up to about
    /// 32 KiB). A longer one is an error rather than silently cut.
    pub fn recv_once_max(&self, max: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; max];
        // SAFETY: reading into our own buffer; MSG_TRUNC makes recv return the real length.
        let n = unsafe {
            libc::recv(
                self.fd,
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                libc::MSG_TRUNC,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n as usize > max {
            return Err(io::Error::other(format!(
                "netlink datagram of {n} bytes, more than {max}"
            )));
        }
        buf.truncate(n as usize);
        Ok(buf)
    }

    /// True when no further answer is queued (after an error the remaining ACKs may not come).
    fn nothing_more(&self) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd we own.
        let r = unsafe { libc::poll(&mut pfd, 1, 200) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(r == 0)
    }
}
