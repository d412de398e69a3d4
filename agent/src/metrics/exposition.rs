//! The bytes of one exposition, put together per scrape without copying or compressing the
//! snapshot again.
//!
//! An exposition is three parts: the live series (a few KiB, encoded per scrape), the
//! collector's snapshot (4-5 MB at 10,000 forwards and 10,000 firewall rules, encoded once per
//! read) and the closing `# EOF`. A scrape used to copy the snapshot into a fresh String and
//! send all of it: megabytes of allocation, copying and TCP per scrape, on the two cores the
//! pushes need.
//!
//! - Identity (a client that does not take gzip): the parts go out as three `Bytes` frames;
//!   the snapshot's is a reference to the collector's buffer.
//! - gzip (Prometheus always sends `Accept-Encoding: gzip`): the collector also deflates the
//!   snapshot once per read, as a raw deflate segment ended by a *full flush*. A full flush
//!   aligns to a byte and leaves no back-reference into earlier data, so a segment compressed on
//!   its own can sit between others in one deflate stream. A scrape deflates only the live part
//!   (ended by a full flush too) and `# EOF` (the final block), and writes one gzip member:
//!   header, the three segments, then the CRC-32 of the whole text (combined from the parts'
//!   CRCs, without reading the snapshot again) and its length. One member, not several
//!   concatenated: every gzip reader takes it (some, curl among them, stop after a first member).

use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress, Status};

/// The closing line of an OpenMetrics exposition.
pub const EOF: &[u8] = b"# EOF\n";

/// gzip header (RFC 1952): magic, deflate, no flags, no mtime, no extra flags, OS unix.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];

/// A part of the text, deflated on its own (see the module comment).
#[derive(Debug, Clone, Default)]
pub struct Deflated {
    /// Raw deflate blocks, ended by a full flush (or final, for the last part).
    pub blocks: Bytes,
    /// CRC-32 of the uncompressed part.
    pub crc: u32,
    /// Length of the uncompressed part.
    pub len: u64,
}

impl Deflated {
    /// Deflates `text` as a segment to be followed by others (`last` false: full flush), or
    /// as the end of the stream (`last` true: the final block).
    pub fn of(text: &[u8], last: bool) -> Deflated {
        let mut crc = crc32fast::Hasher::new();
        crc.update(text);
        Deflated {
            blocks: Bytes::from(deflate(text, last)),
            crc: crc.finalize(),
            len: text.len() as u64,
        }
    }
}

/// Raw deflate (no zlib header) of `input` with a fresh dictionary. Level 1: the text is
/// label names and numbers repeated thousands of times and compresses ~10x even so, and
/// the collector pays this every read whether anybody scrapes or not.
fn deflate(input: &[u8], last: bool) -> Vec<u8> {
    let mut c = Compress::new(Compression::fast(), false);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Full
    };
    let mut out = Vec::with_capacity(input.len() / 4 + 64);
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(4096));
        }
        let done = c.total_in() as usize;
        // Input and output are both in memory: deflate cannot fail on them.
        let status = c
            .compress_vec(&input[done..], &mut out, flush)
            .unwrap_or(Status::StreamEnd);
        let all_in = c.total_in() as usize == input.len();
        match status {
            Status::StreamEnd => break,
            // A flush is complete once a call consumed everything and left room in `out`.
            _ if !last && all_in && out.len() < out.capacity() => break,
            _ => {}
        }
    }
    out
}

/// The whole exposition as one gzip member: `live` deflated now, then `snapshot` (deflated by
/// the collector), then `# EOF`.
pub fn gzip(live: &[u8], snapshot: &Deflated) -> Vec<Bytes> {
    let live = Deflated::of(live, false);
    let eof = Deflated::of(EOF, true);
    let mut crc = crc32fast::Hasher::new_with_initial_len(live.crc, live.len);
    crc.combine(&crc32fast::Hasher::new_with_initial_len(
        snapshot.crc,
        snapshot.len,
    ));
    crc.combine(&crc32fast::Hasher::new_with_initial_len(eof.crc, eof.len));
    let total = live.len + snapshot.len + eof.len;
    let mut trailer = Vec::with_capacity(8);
    trailer.extend_from_slice(&crc.finalize().to_le_bytes());
    // ISIZE: the length modulo 2^32 (RFC 1952).
    trailer.extend_from_slice(&(total as u32).to_le_bytes());
    vec![
        Bytes::from_static(&GZIP_HEADER),
        live.blocks,
        snapshot.blocks.clone(),
        eof.blocks,
        Bytes::from(trailer),
    ]
}

/// Whether an `Accept-Encoding` value takes gzip (a `gzip` or `*` coding whose q is not 0).
pub fn takes_gzip(accept_encoding: &str) -> bool {
    accept_encoding.split(',').any(|coding| {
        let mut parts = coding.split(';').map(str::trim);
        let name = parts.next().unwrap_or("");
        let refused = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(parts: &[Bytes]) -> Vec<u8> {
        let all: Vec<u8> = parts.iter().flat_map(|b| b.iter().copied()).collect();
        let mut out = Vec::new();
        // GzDecoder reads ONE member and checks its CRC and length: the parts must make one.
        flate2::read::GzDecoder::new(&all[..])
            .read_to_end(&mut out)
            .expect("a valid gzip member");
        out
    }

    #[test]
    fn the_parts_make_one_gzip_member_of_the_whole_text() {
        let live = b"# HELP vr_pushes Pushes\n# TYPE vr_pushes counter\nvr_pushes_total{result=\"ok\"} 3\n";
        let snapshot: String = (0..20_000)
            .map(|i| {
                format!(
                    "vr_port_forward_bytes_total{{public_ip=\"192.0.2.11\",protocol=\"tcp\",ports=\"{}\"}} {}\n",
                    10_000 + i,
                    i * 7
                )
            })
            .collect();
        let seg = Deflated::of(snapshot.as_bytes(), false);
        assert!(
            seg.blocks.len() * 5 < snapshot.len(),
            "{}",
            seg.blocks.len()
        );
        let text = gunzip(&gzip(live, &seg));
        let want = [&live[..], snapshot.as_bytes(), EOF].concat();
        assert_eq!(text.len(), want.len());
        assert!(text == want);
        // The same snapshot segment serves the next scrape, with other live values.
        let text = gunzip(&gzip(b"vr_pushes_total 4\n", &seg));
        assert!(text.ends_with(EOF) && text.starts_with(b"vr_pushes_total 4\n"));
        // An empty snapshot (nothing read yet) too.
        let empty = gunzip(&gzip(live, &Deflated::of(b"", false)));
        assert_eq!(empty, [&live[..], EOF].concat());
    }

    #[test]
    fn accept_encoding() {
        for yes in ["gzip", "deflate, gzip", "GZIP;q=0.5", "*", "br, gzip ; q=1"] {
            assert!(takes_gzip(yes), "{yes}");
        }
        for no in [
            "",
            "identity",
            "deflate",
            "gzip;q=0",
            "gzip; q=0.0",
            "x-gzip2",
        ] {
            assert!(!takes_gzip(no), "{no}");
        }
    }
}
