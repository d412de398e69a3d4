//! The only place that calls libnftnl directly (nftnl-sys): the safe `nftnl` crate has no
//! set elements with map data, verdicts, concatenated keys or key ranges, and its batch
//! hides the sequence numbers we need to name a failing object. Every pointer allocated
//! here is freed here (owners with `Drop`).

use std::ffi::CString;
use std::os::raw::c_void;

use nftnl_sys as sys;

use super::program::{Expr, Program, SetSpec};
use crate::ir::Verdict;

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
        (msg_type, family, flags): (u16, u16, u16),
        target: ElemTarget<'_>,
        elems: &[RawElem],
    ) -> u32 {
        let set_id = target.set_id;
        let table = cstr(target.table);
        let set = cstr(target.set);
        // SAFETY: nlh points into the batch buffer; every object allocated here is freed here.
        self.push(msg_type, family, flags, |nlh| unsafe {
            let s = sys::nftnl_set_alloc();
            sys::nftnl_set_set_str(s, sys::NFTNL_SET_TABLE as u16, table.as_ptr());
            sys::nftnl_set_set_str(s, sys::NFTNL_SET_NAME as u16, set.as_ptr());
            sys::nftnl_set_set_u32(s, sys::NFTNL_SET_FAMILY as u16, family as u32);
            if let Some(id) = set_id {
                sys::nftnl_set_set_u32(s, sys::NFTNL_SET_ID as u16, id);
            }
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
    /// NEWCHAIN: a regular chain, or a base chain with its hook, priority, type and policy.
    pub fn chain(&mut self, family: u16, table: &str, c: &ChainSpec) -> u32 {
        let table = cstr(table);
        let name = cstr(&c.name);
        let kind = c.base.map(|b| cstr(b.kind));
        // SAFETY: nlh points into the batch buffer; every object allocated here is freed here.
        self.push(
            libc::NFT_MSG_NEWCHAIN as u16,
            family,
            libc::NLM_F_CREATE as u16,
            |nlh| unsafe {
                let ch = sys::nftnl_chain_alloc();
                sys::nftnl_chain_set_str(ch, sys::NFTNL_CHAIN_TABLE as u16, table.as_ptr());
                sys::nftnl_chain_set_str(ch, sys::NFTNL_CHAIN_NAME as u16, name.as_ptr());
                sys::nftnl_chain_set_u32(ch, sys::NFTNL_CHAIN_FAMILY as u16, family as u32);
                if let (Some(b), Some(kind)) = (c.base, &kind) {
                    sys::nftnl_chain_set_u32(ch, sys::NFTNL_CHAIN_HOOKNUM as u16, b.hook);
                    sys::nftnl_chain_set_s32(ch, sys::NFTNL_CHAIN_PRIO as u16, b.priority);
                    sys::nftnl_chain_set_str(ch, sys::NFTNL_CHAIN_TYPE as u16, kind.as_ptr());
                    sys::nftnl_chain_set_u32(ch, sys::NFTNL_CHAIN_POLICY as u16, b.policy);
                }
                if !c.udata.is_empty() {
                    sys::nftnl_chain_set_data(
                        ch,
                        sys::NFTNL_CHAIN_USERDATA as u16,
                        c.udata.as_ptr() as *const c_void,
                        c.udata.len() as u32,
                    );
                }
                sys::nftnl_chain_nlmsg_build_payload(nlh, ch);
                sys::nftnl_chain_free(ch);
            },
        )
    }

    /// NEWSET with the attributes of `spec`; `id` lets later messages of the batch refer
    /// to it (anonymous sets have no name until the kernel gives them one).
    pub fn set(
        &mut self,
        family: u16,
        table: &str,
        name: &str,
        id: u32,
        spec: &SetSpec,
        size: Option<u32>,
    ) -> u32 {
        let table = cstr(table);
        let name = cstr(name);
        // SAFETY: nlh points into the batch buffer; every object allocated here is freed here.
        self.push(
            libc::NFT_MSG_NEWSET as u16,
            family,
            libc::NLM_F_CREATE as u16,
            |nlh| unsafe {
                let s = sys::nftnl_set_alloc();
                let u32_attr = |attr: u32, v: u32| {
                    sys::nftnl_set_set_u32(s, attr as u16, v);
                };
                sys::nftnl_set_set_str(s, sys::NFTNL_SET_TABLE as u16, table.as_ptr());
                sys::nftnl_set_set_str(s, sys::NFTNL_SET_NAME as u16, name.as_ptr());
                u32_attr(sys::NFTNL_SET_FAMILY, family as u32);
                u32_attr(sys::NFTNL_SET_FLAGS, spec.flags);
                u32_attr(sys::NFTNL_SET_KEY_TYPE, spec.key_type);
                u32_attr(sys::NFTNL_SET_KEY_LEN, spec.key_len);
                if let Some((ty, len)) = spec.data {
                    u32_attr(sys::NFTNL_SET_DATA_TYPE, ty);
                    if len > 0 {
                        u32_attr(sys::NFTNL_SET_DATA_LEN, len);
                    }
                }
                u32_attr(sys::NFTNL_SET_ID, id);
                if let Some(n) = size {
                    u32_attr(sys::NFTNL_SET_DESC_SIZE, n);
                }
                if !spec.concat.is_empty() {
                    sys::nftnl_set_set_data(
                        s,
                        sys::NFTNL_SET_DESC_CONCAT as u16,
                        spec.concat.as_ptr() as *const c_void,
                        spec.concat.len() as u32,
                    );
                }
                sys::nftnl_set_set_data(
                    s,
                    sys::NFTNL_SET_USERDATA as u16,
                    spec.udata.as_ptr() as *const c_void,
                    spec.udata.len() as u32,
                );
                sys::nftnl_set_nlmsg_build_payload(nlh, s);
                sys::nftnl_set_free(s);
            },
        )
    }

    /// NEWRULE (appended) with the expressions of `p`.
    pub fn rule(&mut self, family: u16, table: &str, chain: &str, p: &Program) -> u32 {
        let table = cstr(table);
        let chain = cstr(chain);
        // SAFETY: nlh points into the batch buffer; every object allocated here is freed here
        // (a rule owns the expressions added to it).
        self.push(
            libc::NFT_MSG_NEWRULE as u16,
            family,
            (libc::NLM_F_CREATE | libc::NLM_F_APPEND) as u16,
            |nlh| unsafe {
                let r = sys::nftnl_rule_alloc();
                sys::nftnl_rule_set_str(r, sys::NFTNL_RULE_TABLE as u16, table.as_ptr());
                sys::nftnl_rule_set_str(r, sys::NFTNL_RULE_CHAIN as u16, chain.as_ptr());
                sys::nftnl_rule_set_u32(r, sys::NFTNL_RULE_FAMILY as u16, family as u32);
                for e in &p.exprs {
                    sys::nftnl_rule_add_expr(r, expr(e));
                }
                if let Some(c) = &p.comment {
                    // NFTNL_UDATA_RULE_COMMENT, NUL-terminated, as nft stores it.
                    let mut ud = vec![0u8, (c.len() + 1) as u8];
                    ud.extend(c.as_bytes());
                    ud.push(0);
                    sys::nftnl_rule_set_data(
                        r,
                        sys::NFTNL_RULE_USERDATA as u16,
                        ud.as_ptr() as *const c_void,
                        ud.len() as u32,
                    );
                }
                sys::nftnl_rule_nlmsg_build_payload(nlh, r);
                sys::nftnl_rule_free(r);
            },
        )
    }
}

/// The set an element message goes to.
#[derive(Debug, Clone, Copy)]
pub struct ElemTarget<'a> {
    pub table: &'a str,
    pub set: &'a str,
    /// For sets created earlier in the same batch (anonymous ones have no name yet).
    pub set_id: Option<u32>,
}

/// A chain's netlink attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSpec {
    pub name: String,
    pub base: Option<BaseSpec>,
    /// NFTNL_UDATA_CHAIN_COMMENT TLV, or empty.
    pub udata: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaseSpec {
    pub kind: &'static str,
    pub hook: u32,
    pub priority: i32,
    /// NF_ACCEPT or NF_DROP.
    pub policy: u32,
}

/// One expression as a libnftnl object (ownership passes to the rule it is added to).
fn expr(e: &Expr) -> *mut sys::nftnl_expr {
    let new = |name: &str| {
        let n = cstr(name);
        // SAFETY: plain allocation by expression name.
        let p = unsafe { sys::nftnl_expr_alloc(n.as_ptr()) };
        assert!(!p.is_null(), "nftnl_expr_alloc({name}) failed");
        p
    };
    let u32s = |x: *mut sys::nftnl_expr, attrs: &[(u32, u32)]| {
        for (a, v) in attrs {
            // SAFETY: x is a live expression; libnftnl copies the value.
            unsafe { sys::nftnl_expr_set_u32(x, *a as u16, *v) };
        }
    };
    let data = |x: *mut sys::nftnl_expr, attr: u32, d: &[u8]| {
        // SAFETY: x is a live expression; libnftnl copies `d.len()` bytes from `d`.
        unsafe { sys::nftnl_expr_set(x, attr as u16, d.as_ptr() as *const c_void, d.len() as u32) };
    };
    let string = |x: *mut sys::nftnl_expr, attr: u32, v: &str| {
        let c = cstr(v);
        // SAFETY: x is a live expression; libnftnl copies the NUL-terminated string.
        unsafe { sys::nftnl_expr_set_str(x, attr as u16, c.as_ptr()) };
    };
    match e {
        Expr::MetaLoad { key, dreg } => {
            let x = new("meta");
            u32s(
                x,
                &[
                    (sys::NFTNL_EXPR_META_KEY, *key as u32),
                    (sys::NFTNL_EXPR_META_DREG, *dreg),
                ],
            );
            x
        }
        Expr::MetaSet { key, sreg } => {
            let x = new("meta");
            u32s(
                x,
                &[
                    (sys::NFTNL_EXPR_META_KEY, *key as u32),
                    (sys::NFTNL_EXPR_META_SREG, *sreg),
                ],
            );
            x
        }
        Expr::Payload {
            base,
            offset,
            len,
            dreg,
        } => {
            let x = new("payload");
            u32s(
                x,
                &[
                    (sys::NFTNL_EXPR_PAYLOAD_BASE, *base as u32),
                    (sys::NFTNL_EXPR_PAYLOAD_OFFSET, *offset),
                    (sys::NFTNL_EXPR_PAYLOAD_LEN, *len),
                    (sys::NFTNL_EXPR_PAYLOAD_DREG, *dreg),
                ],
            );
            x
        }
        Expr::Cmp { op, sreg, data: d } => {
            let x = new("cmp");
            u32s(
                x,
                &[
                    (sys::NFTNL_EXPR_CMP_SREG, *sreg),
                    (sys::NFTNL_EXPR_CMP_OP, *op as u32),
                ],
            );
            data(x, sys::NFTNL_EXPR_CMP_DATA, d);
            x
        }
        Expr::Bitwise { reg, mask, xor } => {
            let x = new("bitwise");
            u32s(
                x,
                &[
                    (sys::NFTNL_EXPR_BITWISE_SREG, *reg),
                    (sys::NFTNL_EXPR_BITWISE_DREG, *reg),
                    (sys::NFTNL_EXPR_BITWISE_LEN, mask.len() as u32),
                ],
            );
            data(x, sys::NFTNL_EXPR_BITWISE_MASK, mask);
            data(x, sys::NFTNL_EXPR_BITWISE_XOR, xor);
            x
        }
        Expr::Hton { reg, size, len } => {
            let x = new("byteorder");
            u32s(
                x,
                &[
                    (sys::NFTNL_EXPR_BYTEORDER_SREG, *reg),
                    (sys::NFTNL_EXPR_BYTEORDER_DREG, *reg),
                    // NFT_BYTEORDER_HTON
                    (sys::NFTNL_EXPR_BYTEORDER_OP, 1),
                    (sys::NFTNL_EXPR_BYTEORDER_LEN, *len),
                    (sys::NFTNL_EXPR_BYTEORDER_SIZE, *size),
                ],
            );
            x
        }
        Expr::Lookup {
            sreg,
            dreg,
            set,
            set_id,
            invert,
        } => {
            let x = new("lookup");
            string(x, sys::NFTNL_EXPR_LOOKUP_SET, set);
            u32s(x, &[(sys::NFTNL_EXPR_LOOKUP_SREG, *sreg)]);
            if let Some(d) = dreg {
                u32s(x, &[(sys::NFTNL_EXPR_LOOKUP_DREG, *d)]);
            }
            if let Some(id) = set_id {
                u32s(x, &[(sys::NFTNL_EXPR_LOOKUP_SET_ID, *id)]);
            }
            if *invert {
                // NFT_LOOKUP_F_INV
                u32s(x, &[(sys::NFTNL_EXPR_LOOKUP_FLAGS, 1)]);
            }
            x
        }
        Expr::CtLoad { key, dreg } => {
            let x = new("ct");
            u32s(
                x,
                &[
                    (sys::NFTNL_EXPR_CT_KEY, *key as u32),
                    (sys::NFTNL_EXPR_CT_DREG, *dreg),
                ],
            );
            x
        }
        Expr::CtSet { key, sreg } => {
            let x = new("ct");
            u32s(
                x,
                &[
                    (sys::NFTNL_EXPR_CT_KEY, *key as u32),
                    (sys::NFTNL_EXPR_CT_SREG, *sreg),
                ],
            );
            x
        }
        Expr::Counter => new("counter"),
        Expr::Verdict(v) => {
            let x = new("immediate");
            let (code, chain) = match v {
                Verdict::Accept => (libc::NF_ACCEPT, None),
                Verdict::Drop => (libc::NF_DROP, None),
                Verdict::Return => (libc::NFT_RETURN, None),
                Verdict::Jump(c) => (libc::NFT_JUMP, Some(c)),
            };
            u32s(
                x,
                &[
                    (sys::NFTNL_EXPR_IMM_DREG, 0),
                    (sys::NFTNL_EXPR_IMM_VERDICT, code as u32),
                ],
            );
            if let Some(c) = chain {
                string(x, sys::NFTNL_EXPR_IMM_CHAIN, c);
            }
            x
        }
        Expr::Immediate { dreg, data: d } => {
            let x = new("immediate");
            u32s(x, &[(sys::NFTNL_EXPR_IMM_DREG, *dreg)]);
            data(x, sys::NFTNL_EXPR_IMM_DATA, d);
            x
        }
        Expr::Nat { dnat, addr, proto } => {
            let x = new("nat");
            u32s(
                x,
                &[
                    // NFT_NAT_SNAT = 0, NFT_NAT_DNAT = 1
                    (sys::NFTNL_EXPR_NAT_TYPE, u32::from(*dnat)),
                    (sys::NFTNL_EXPR_NAT_FAMILY, libc::NFPROTO_IPV4 as u32),
                    (sys::NFTNL_EXPR_NAT_REG_ADDR_MIN, *addr),
                ],
            );
            if let Some(p) = proto {
                u32s(x, &[(sys::NFTNL_EXPR_NAT_REG_PROTO_MIN, *p)]);
            }
            x
        }
        Expr::Masq => new("masq"),
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
