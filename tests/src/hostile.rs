//! Hostile pushes too big for the repository, generated at run time, and the agent's peak
//! resident memory while it takes them (issue 12: a router VM has 256-512 MB).

/// The push size limit of the agent (`vr_agent::parse::MAX_PUSH_BYTES`).
pub const MAX_PUSH_BYTES: usize = 16 * 1024 * 1024;

/// `{prefix}{n comma-joined items}{suffix}`, as many items as fit in `size` bytes.
fn fill(prefix: &str, item: impl Fn(usize) -> String, suffix: &str, size: usize) -> Vec<u8> {
    let mut s = String::with_capacity(size);
    s.push_str(prefix);
    let mut i = 0;
    loop {
        let it = item(i);
        if s.len() + it.len() + 1 + suffix.len() > size {
            break;
        }
        if i > 0 {
            s.push(',');
        }
        s.push_str(&it);
        i += 1;
    }
    s.push_str(suffix);
    s.into_bytes()
}

/// Cases generated at run time: (name, bytes). Every one must be rejected.
pub fn big_cases() -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    let ten_mb = 10 << 20;
    // Over the size limit: refused before parsing.
    v.push((
        "huge-array-1m-routes".into(),
        fill(
            r#"{"schema":1,"routes":["#,
            |i| {
                format!(
                    r#"{{"destination":"10.{}.{}.0/24","gateway":"10.1.1.254"}}"#,
                    (i / 256) % 256,
                    i % 256
                )
            },
            "]}",
            60 << 20,
        ),
    ));
    let int = |i: usize| (i % 65536).to_string();
    v.push((
        "huge-array-1m-ints".into(),
        fill(r#"{"schema":1,"routes":["#, int, "]}", 7 << 20),
    ));
    // The largest accepted size, as arrays of integers where objects belong.
    v.push((
        "array-16mib-ints".into(),
        fill(r#"{"schema":1,"routes":["#, int, "]}", MAX_PUSH_BYTES),
    ));
    v.push((
        "array-16mib-ints-cs".into(),
        fill(
            r#"{"type":"staticroutes","delete_from_processed_cache":false,"routes":["#,
            int,
            "]}",
            MAX_PUSH_BYTES,
        ),
    ));
    v.push((
        "array-16mib-ints-type".into(),
        fill(r#"{"type":["#, int, "]}", MAX_PUSH_BYTES),
    ));
    // 10 MB strings in every position an error quotes.
    let e = "e".repeat(ten_mb);
    v.push((
        "string-10mb-device".into(),
        format!(r#"{{"schema":1,"interfaces":[{{"device":"{e}","role":"guest"}}]}}"#).into_bytes(),
    ));
    v.push(("string-10mb-cs".into(), format!(r#"{{"type":"staticroutes","delete_from_processed_cache":false,"routes":[{{"revoke":false,"ip_address":"10.1.1.1","gateway":"{}","network":"10.9.0.0/16"}}]}}"#, "1".repeat(ten_mb)).into_bytes()));
    v.push((
        "string-10mb-key".into(),
        format!(r#"{{"schema":1,"{e}":1}}"#).into_bytes(),
    ));
    v.push((
        "string-10mb-type".into(),
        format!(r#"{{"type":"{e}"}}"#).into_bytes(),
    ));
    v.push((
        "string-10mb-escaped".into(),
        format!(
            r#"{{"schema":1,"interfaces":[{{"device":"{}","role":"guest"}}]}}"#,
            "\\u0007\\\"".repeat(ten_mb / 8)
        )
        .into_bytes(),
    ));
    // 100,000 rules that parse but are each invalid: refused for their number. Under the
    // agent's limit of 50,000 entries per list, each one's error is made (and all but the
    // first few only counted).
    v.push(("invalid-rules-100k-native".into(), invalid_routes(100_000)));
    v.push(("invalid-rules-100k-cs".into(), invalid_forwards(100_000)));
    v.push(("invalid-rules-45k-native".into(), invalid_routes(45_000)));
    v.push(("invalid-rules-45k-cs".into(), invalid_forwards(45_000)));
    v.push((
        "deep-nesting-arrays".into(),
        format!(
            r#"{{"schema":1,"routes":{}{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        )
        .into_bytes(),
    ));
    v.push((
        "deep-nesting-objects".into(),
        format!(
            r#"{{"schema":1,"nat":{}1{}}}"#,
            r#"{"a":"#.repeat(50_000),
            "}".repeat(50_000)
        )
        .into_bytes(),
    ));
    v.push((
        "over-size-limit-20mb".into(),
        format!(
            r#"{{"schema":1,"routes":[],"pad":"{}"}}"#,
            " ".repeat(20 << 20)
        )
        .into_bytes(),
    ));
    v
}

/// `n` native routes with host bits set (each rejected by validation, not by the parser).
fn invalid_routes(n: usize) -> Vec<u8> {
    let routes: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"destination":"10.{}.{}.1/24","gateway":"10.1.1.254"}}"#,
                (i / 256) % 256,
                i % 256
            )
        })
        .collect();
    format!(r#"{{"schema":1,"routes":[{}]}}"#, routes.join(",")).into_bytes()
}

/// `n` CloudStack port forwards whose public address is not an address.
fn invalid_forwards(n: usize) -> Vec<u8> {
    let rules: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"revoke":false,"protocol":"tcp","source_ip_address":"x{i}","source_port_range":"80:80","destination_ip_address":"10.1.1.10","destination_port_range":"80:80"}}"#
            )
        })
        .collect();
    format!(
        r#"{{"type":"forwardrules","delete_from_processed_cache":false,"rules":[{}]}}"#,
        rules.join(",")
    )
    .into_bytes()
}

/// Peak resident set (`VmHWM`) of a process, in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Resets a process's peak resident set to its current one (`clear_refs` 5), so the next
/// [`peak_rss_kib`] is the peak of what happens from now on.
pub fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}
