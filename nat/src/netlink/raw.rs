//! The only place that calls libnftnl directly (nftnl-sys): the safe `nftnl` crate has no
//! set elements with map data, verdicts, concatenated keys or key ranges, and its batch
//! hides the sequence numbers we need to name a failing object. Every pointer allocated
//! here is freed here (owners with `Drop`).

use std::ffi::CString;
use std::os::raw::c_void;

use nftnl_sys as sys;

/// A growing nftnl batch: BEGIN, messages, END, each with its own sequence number.
pub struct Batch {
    ptr: *mut sys::nftnl_batch,
    next_seq: u32,
}

impl Drop for Batch {
    fn drop(&mut self) {
        // SAFETY: allocated by nftnl_batch_alloc in `new`, freed once.
        unsafe { sys::nftnl_batch_free(self.ptr) }
    }
}

/// One page of the batch buffer; a page holds many messages, the batch chains pages.
const PAGE: u32 = 256 * 1024;
/// Room one message may take past the end of a page (elements are small).
const OVERRUN: u32 = 64 * 1024;

impl Batch {
    pub fn new(first_seq: u32) -> Batch {
        // SAFETY: plain allocation; null is checked.
        let ptr = unsafe { sys::nftnl_batch_alloc(PAGE, OVERRUN) };
        assert!(!ptr.is_null(), "nftnl_batch_alloc failed (out of memory)");
        let mut b = Batch {
            ptr,
            next_seq: first_seq,
        };
        let seq = b.take_seq();
        // SAFETY: the buffer has at least OVERRUN bytes free.
        unsafe {
            sys::nftnl_batch_begin(sys::nftnl_batch_buffer(b.ptr) as *mut _, seq);
            sys::nftnl_batch_update(b.ptr);
        }
        b
    }

    fn take_seq(&mut self) -> u32 {
        let s = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        s
    }

    /// Appends END; returns its sequence number.
    pub fn end(&mut self) -> u32 {
        let seq = self.take_seq();
        // SAFETY: as in `new`.
        unsafe {
            sys::nftnl_batch_end(sys::nftnl_batch_buffer(self.ptr) as *mut _, seq);
            sys::nftnl_batch_update(self.ptr);
        }
        seq
    }

    /// Appends one message: header `msg_type` (NFT_MSG_*), payload written by `payload`.
    fn push(
        &mut self,
        msg_type: u16,
        family: u16,
        flags: u16,
        payload: impl FnOnce(*mut libc::nlmsghdr),
    ) -> u32 {
        let seq = self.take_seq();
        let ty = ((libc::NFNL_SUBSYS_NFTABLES as u16) << 8) | msg_type;
        // SAFETY: the buffer has OVERRUN bytes free after each update.
        unsafe {
            let nlh = sys::nftnl_nlmsg_build_hdr(
                sys::nftnl_batch_buffer(self.ptr) as *mut _,
                ty,
                family,
                flags | libc::NLM_F_ACK as u16,
                seq,
            );
            payload(nlh);
            sys::nftnl_batch_update(self.ptr);
        }
        seq
    }

    /// The buffers to hand to one `sendmsg`.
    pub fn iovecs(&self) -> Vec<libc::iovec> {
        // SAFETY: the batch owns the pages until dropped; the iovecs borrow `self`.
        unsafe {
            let n = sys::nftnl_batch_iovec_len(self.ptr);
            let mut v = vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                n as usize
            ];
            sys::nftnl_batch_iovec(self.ptr, v.as_mut_ptr() as *mut _, n as u32);
            v
        }
    }

    /// NEWTABLE (`create`: fail if it exists) or DELTABLE.
    pub fn table(&mut self, msg_type: u16, family: u16, name: &str, flags: u16) -> u32 {
        let name = cstr(name);
        // SAFETY: nlh points into the batch buffer; every object allocated here is freed here.
        self.push(msg_type, family, flags, |nlh| unsafe {
            let t = sys::nftnl_table_alloc();
            sys::nftnl_table_set_str(t, sys::NFTNL_TABLE_NAME as u16, name.as_ptr());
            sys::nftnl_table_set_u32(t, sys::NFTNL_TABLE_FAMILY as u16, family as u32);
            sys::nftnl_table_nlmsg_build_payload(nlh, t);
            sys::nftnl_table_free(t);
        })
    }

    /// NEWSETELEM / DELSETELEM with the given encoded elements.
    pub fn elements(
        &mut self,
        msg_type: u16,
        family: u16,
        flags: u16,
        table: &str,
        set: &str,
        elems: &[RawElem],
    ) -> u32 {
        let table = cstr(table);
        let set = cstr(set);
        // SAFETY: nlh points into the batch buffer; every object allocated here is freed here.
        self.push(msg_type, family, flags, |nlh| unsafe {
            let s = sys::nftnl_set_alloc();
            sys::nftnl_set_set_str(s, sys::NFTNL_SET_TABLE as u16, table.as_ptr());
            sys::nftnl_set_set_str(s, sys::NFTNL_SET_NAME as u16, set.as_ptr());
            sys::nftnl_set_set_u32(s, sys::NFTNL_SET_FAMILY as u16, family as u32);
            for el in elems {
                let e = sys::nftnl_set_elem_alloc();
                let put = |attr: u32, b: &[u8]| {
                    sys::nftnl_set_elem_set(
                        e,
                        attr as u16,
                        b.as_ptr() as *const c_void,
                        b.len() as u32,
                    );
                };
                put(sys::NFTNL_SET_ELEM_KEY, &el.key);
                if let Some(k) = &el.key_end {
                    put(sys::NFTNL_SET_ELEM_KEY_END, k);
                }
                if el.flags != 0 {
                    sys::nftnl_set_elem_set_u32(e, sys::NFTNL_SET_ELEM_FLAGS as u16, el.flags);
                }
                match &el.data {
                    None => {}
                    Some(RawData::Value(d)) => put(sys::NFTNL_SET_ELEM_DATA, d),
                    Some(RawData::Verdict(code, chain)) => {
                        sys::nftnl_set_elem_set_u32(
                            e,
                            sys::NFTNL_SET_ELEM_VERDICT as u16,
                            *code as u32,
                        );
                        if let Some(c) = chain {
                            let c = cstr(c);
                            sys::nftnl_set_elem_set_str(
                                e,
                                sys::NFTNL_SET_ELEM_CHAIN as u16,
                                c.as_ptr(),
                            );
                        }
                    }
                }
                sys::nftnl_set_elem_add(s, e);
            }
            sys::nftnl_set_elems_nlmsg_build_payload(nlh, s);
            sys::nftnl_set_free(s);
        })
    }
}

/// One element as the kernel sees it (keys and data already encoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawElem {
    pub key: Vec<u8>,
    pub key_end: Option<Vec<u8>>,
    /// NFT_SET_ELEM_INTERVAL_END for the closing element of a plain interval.
    pub flags: u32,
    pub data: Option<RawData>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawData {
    Value(Vec<u8>),
    /// NF_ACCEPT / NF_DROP / NFT_RETURN / NFT_JUMP and the jump target.
    Verdict(i32, Option<String>),
}

/// Names are validated upstream (no NUL); a NUL would be a bug, not input.
fn cstr(s: &str) -> CString {
    CString::new(s).expect("nftables object names never contain NUL")
}
