//! haproxy's `show stat` answer (CSV, its first line the `# `-led header) read into rows:
//! frontends, backends and servers with their state as haproxy reports it and their session
//! counts. Columns are found by their header names, so a haproxy version that adds columns
//! reads the same.

use std::fmt;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Frontend,
    Backend,
    Server,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub proxy: String,
    pub name: String,
    pub kind: Kind,
    /// `OPEN`, `UP`, `DOWN`, `DRAIN`, `MAINT`, `no check`, ...
    pub status: String,
    /// Current sessions.
    pub sessions: u64,
    /// Sessions since start.
    pub total_sessions: u64,
    /// Last health check (`L4OK`, `L7OK`, `L4CON`, ...), servers only.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub check: String,
    /// `ip:port` of a server.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub address: String,
}

/// At most this many rows are read (memory stays bounded whatever the socket sends).
pub const MAX_ROWS: usize = 100_000;

pub fn parse(csv: &str) -> Vec<Row> {
    let mut lines = csv.lines();
    let Some(header) = lines.next().and_then(|h| h.strip_prefix("# ")) else {
        return Vec::new();
    };
    let cols: Vec<&str> = header.split(',').collect();
    let at = |name: &str| cols.iter().position(|c| *c == name);
    let (px, sv, st, scur, stot, check, addr, ty) = (
        at("pxname"),
        at("svname"),
        at("status"),
        at("scur"),
        at("stot"),
        at("check_status"),
        at("addr"),
        at("type"),
    );
    let mut out = Vec::new();
    for line in lines.take(MAX_ROWS) {
        let f: Vec<&str> = line.split(',').collect();
        let get = |i: Option<usize>| i.and_then(|i| f.get(i)).copied().unwrap_or("");
        let num = |i: Option<usize>| get(i).parse().unwrap_or(0);
        if get(px).is_empty() {
            continue;
        }
        let kind = match get(ty) {
            "0" => Kind::Frontend,
            "1" => Kind::Backend,
            "2" => Kind::Server,
            _ => continue,
        };
        out.push(Row {
            proxy: get(px).into(),
            name: get(sv).into(),
            kind,
            status: get(st).into(),
            sessions: num(scur),
            total_sessions: num(stot),
            check: get(check).into(),
            address: get(addr).into(),
        });
    }
    out
}

/// The operator's table.
#[derive(Debug)]
pub struct Table<'a>(pub &'a [Row]);

impl fmt::Display for Table<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<10} {:<24} {:<24} {:<10} {:>8} {:>10} {:<8} ADDRESS",
            "KIND", "PROXY", "NAME", "STATUS", "SESSIONS", "TOTAL", "CHECK"
        )?;
        for r in self.0 {
            let kind = match r.kind {
                Kind::Frontend => "frontend",
                Kind::Backend => "backend",
                Kind::Server => "server",
            };
            writeln!(
                f,
                "{:<10} {:<24} {:<24} {:<10} {:>8} {:>10} {:<8} {}",
                kind, r.proxy, r.name, r.status, r.sessions, r.total_sessions, r.check, r.address
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_by_header_names() {
        let csv = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,addr\n\
a,FRONTEND,,,1,2,4096,10,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,1,,,,,\n\
a,s1,0,0,1,1,,7,0,0,,0,,0,0,0,0,UP,1,1,0,0,0,5,0,,1,2,1,,7,,2,0,,1,L4OK,,0,,10.0.0.1:80\n\
a,BACKEND,0,0,1,1,410,7,0,0,0,0,,0,0,0,0,UP,1,1,0,,0,5,0,,1,2,0,,7,,1,0,,1,,,,,\n";
        let r = parse(csv);
        assert_eq!(r.len(), 3);
        assert_eq!(r[1].kind, Kind::Server);
        assert_eq!(r[1].status, "UP");
        assert_eq!(r[1].total_sessions, 7);
        assert_eq!(r[1].check, "L4OK");
        assert_eq!(r[1].address, "10.0.0.1:80");
        assert_eq!(r[0].kind, Kind::Frontend);
        assert!(Table(&r).to_string().contains("server"));
    }
}
