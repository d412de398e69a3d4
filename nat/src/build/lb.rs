//! Load-balancer listeners on the router itself: the input chain accepts exactly their
//! public address and TCP port pairs (one rule with an anonymous set, before the final drop).
//! The rule exists only while there are listeners, so a router without load balancing keeps
//! the ruleset it had; a change of listeners is a structure change (the table is replaced
//! atomically), which is rare next to port forwards.

use std::net::Ipv4Addr;

use crate::ir::*;

/// Adds the accept rule for `listeners` (`(address, TCP port)`) to the input chain of `rs`.
pub fn open_listeners(rs: &mut Ruleset, listeners: &[(Ipv4Addr, u16)]) {
    if listeners.is_empty() {
        return;
    }
    let mut pairs: Vec<(Ipv4Addr, u16)> = listeners.to_vec();
    pairs.sort();
    pairs.dedup();
    let Some(input) = rs.chains.iter_mut().find(|c| c.name == "input") else {
        return;
    };
    let rule = Rule::new(
        vec![
            eq(Field::MetaL4proto, Value::Proto(super::TCP)),
            in_anon(
                &[Field::IpDaddr, Field::ThDport],
                pairs
                    .iter()
                    .map(|(a, p)| vec![Value::Addr(*a), Value::Port(*p)])
                    .collect(),
            ),
        ],
        vec![Statement::Verdict(Verdict::Accept)],
    )
    .comment("load balancer listeners");
    // Before the final counter-and-drop.
    let at = input.rules.len().saturating_sub(1);
    input.rules.insert(at, rule);
    // The structure changed after build() stamped it.
    crate::observe::restamp(rs);
}
