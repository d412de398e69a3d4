//! `getRouterAlerts.sh <date> <time>` (contract §5): the alerts strictly newer (one-second
//! resolution) than the argument, oldest first, each followed by a literal backslash-n, on one
//! line; `No Alerts` when there are none. Always exit 0.

/// How many alerts one answer carries at most (the newest ones): the MS turns each into an
/// alert row, and the log itself is bounded.
pub const MAX_ALERTS: usize = 500;

/// The `YYYY-MM-DD HH:MM:SS` of the arguments (the remote shell split date and time), or
/// `None` when they are not that (then every alert is newer).
pub fn since(args: &[String]) -> Option<String> {
    let joined = args.join(" ");
    let s = joined.trim();
    let ok = s.len() == 19
        && s.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b' ',
            13 | 16 => b == b':',
            _ => b.is_ascii_digit(),
        });
    ok.then(|| s.to_string())
}

/// The answer from the alerts log's text (oldest line first, as written). Lines that do not
/// start with a timestamp are skipped. The timestamps are fixed-width UTC, so comparing their
/// first 19 characters as text compares the times.
pub fn render(log: &str, since: Option<&str>) -> String {
    let newer: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter(|l| l.len() > 20 && l.as_bytes()[19] == b',' && l.is_char_boundary(19))
        .filter(|l| since.is_none_or(|s| &l[..19] > s))
        .collect();
    if newer.is_empty() {
        return "No Alerts".to_string();
    }
    let start = newer.len().saturating_sub(MAX_ALERTS);
    newer[start..]
        .iter()
        .map(|l| format!("{}\\n", l.replace('\\', "/")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Port of `VRR.execute(GetRouterAlertsCommand)`: (alerts, lastAlertTimestamp), where
    /// `details` is the output plus the trailing newline `AllLinesParser` adds.
    fn java_parse(details: &str) -> (Vec<String>, Option<String>) {
        if !details.is_empty() && details.trim() != "No Alerts" {
            let alerts: Vec<String> = details
                .trim()
                .split("\\n")
                .filter(|s| !s.is_empty()) // Java's split drops trailing empty strings
                .map(str::to_string)
                .collect();
            let last = alerts
                .last()
                .unwrap()
                .split(',')
                .next()
                .unwrap()
                .to_string();
            return (alerts, Some(last));
        }
        (Vec::new(), None)
    }

    /// The MS's `SimpleDateFormat("yyyy-MM-dd HH:mm:ss")`, not lenient.
    fn ms_accepts(ts: &str) -> bool {
        since(&[ts.to_string()]).is_some()
    }

    const LOG: &str = "2024-11-30 08:00:00,123 [ALERT] [dhcp] self-heal: dnsmasq was down\n\
                       2024-11-30 08:00:00,900 [ALERT] [nftables] self-heal: restored\n\
                       2024-11-30 08:03:00,456 [ALERT] [push] push x rejected: 1 invalid value(s)\n";

    #[test]
    fn strictly_newer_at_one_second_resolution_oldest_first_with_literal_backslash_n() {
        let all = render(
            LOG,
            since(&["1970-01-01".into(), "00:00:00".into()]).as_deref(),
        );
        assert_eq!(
            all,
            "2024-11-30 08:00:00,123 [ALERT] [dhcp] self-heal: dnsmasq was down\\n\
             2024-11-30 08:00:00,900 [ALERT] [nftables] self-heal: restored\\n\
             2024-11-30 08:03:00,456 [ALERT] [push] push x rejected: 1 invalid value(s)\\n"
        );
        let (alerts, last) = java_parse(&format!("{all}\n"));
        assert_eq!(alerts.len(), 3);
        assert_eq!(last.as_deref(), Some("2024-11-30 08:03:00"));
        assert!(ms_accepts(last.as_deref().unwrap()));
        // The MS passes the last timestamp back: nothing is repeated, nothing lost.
        let again = render(LOG, Some("2024-11-30 08:00:00"));
        assert!(again.starts_with("2024-11-30 08:03:00,456"), "{again}");
        assert_eq!(render(LOG, Some("2024-11-30 08:03:00")), "No Alerts");
        assert_eq!(java_parse("No Alerts\n"), (Vec::new(), None));
        assert_eq!(render("", None), "No Alerts");
    }

    #[test]
    fn arguments_and_odd_lines() {
        assert_eq!(
            since(&["2024-11-30".into(), "08:00:00".into()]).as_deref(),
            Some("2024-11-30 08:00:00")
        );
        assert_eq!(since(&["2024-11-30".into()]), None);
        assert_eq!(since(&["2024-11-30 08:00:0x".into()]), None);
        assert_eq!(since(&[]), None);
        let odd = "garbage\n\n2024-11-30 08:00:00,1 [ALERT] [x] a\\b\n";
        assert_eq!(
            render(odd, None),
            "2024-11-30 08:00:00,1 [ALERT] [x] a/b\\n"
        );
        let many: String = (0..MAX_ALERTS + 10)
            .map(|i| format!("2024-11-30 08:00:00,000 [ALERT] [x] {i}\n"))
            .collect();
        let (alerts, _) = java_parse(&render(&many, None));
        assert_eq!(alerts.len(), MAX_ALERTS);
        assert!(alerts
            .last()
            .unwrap()
            .ends_with(&format!(" {}", MAX_ALERTS + 9)));
    }
}
