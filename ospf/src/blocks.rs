//! FRR config text (as `show running-config` prints it, or as rendered) -> its blocks.

use std::collections::BTreeMap;

/// A config block: header (`interface eth2`, `router ospf`) -> its lines, trimmed.
pub type Blocks = BTreeMap<String, Vec<String>>;

/// Parses FRR config text into blocks (top-level lines are ignored).
pub fn parse_blocks(text: &str) -> Blocks {
    let mut out = Blocks::new();
    let mut current: Option<String> = None;
    for raw in text.lines() {
        let line = raw.trim_end();
        if line.is_empty() || line.starts_with('!') {
            if !line.starts_with(' ') {
                current = None;
            }
            continue;
        }
        if !raw.starts_with(' ') {
            if line == "exit" || line == "end" {
                current = None;
            } else if line.starts_with("interface ") || line.starts_with("router ospf") {
                let header = line.split_whitespace().collect::<Vec<_>>().join(" ");
                out.entry(header.clone()).or_default();
                current = Some(header);
            } else {
                current = None;
            }
            continue;
        }
        if let Some(h) = &current {
            out.entry(h.clone())
                .or_default()
                .push(line.trim().to_string());
        }
    }
    out
}

/// The `ospf router-id` a config sets, if any.
pub fn router_id(blocks: &Blocks) -> Option<std::net::Ipv4Addr> {
    blocks
        .get("router ospf")?
        .iter()
        .find_map(|l| l.strip_prefix("ospf router-id ")?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_and_router_id() {
        let b = parse_blocks("frr version 8.4.4\n!\ninterface eth3\n description x\n ip ospf cost 10\nexit\n!\nrouter ospf\n ospf router-id 172.16.0.1\nexit\n!\nend\n");
        assert_eq!(b["interface eth3"], ["description x", "ip ospf cost 10"]);
        assert_eq!(router_id(&b), Some("172.16.0.1".parse().unwrap()));
        assert_eq!(router_id(&parse_blocks("router ospf\nexit\n")), None);
    }
}
