//! Drop-in for an unmodified CloudStack (issue 13): the router start sequence and single
//! commands of `cloudstack-contract.md` §14, run from a "hypervisor" namespace over SSH on
//! port 3922 exactly as CloudStack's KVM agent runs them, against sshd with the image's config
//! and the `/opt/cloud/bin` front doors, with every answer parsed by the Java's rule (ported
//! below, naming the class) and real traffic proving what was applied.
//!
//! ```text
//! hv  eth0 169.254.0.1/16 ---- eth1 169.254.3.44/16 (control)  vr  eth0 10.1.1.1/24 ---- lan0 vm 10.1.1.23, .24
//! ext wan0 192.0.2.2/24   ---- eth2 192.0.2.10-.12/24 (public)
//! ```
//!
//! Steps: boot cmdline written as the guest agent does (the agent waits for it, applies it,
//! installs root's key, writes boot_up_done), the patch files by legacy scp, GetDomRVersion,
//! NetworkUsage create, the router-start aggregate `VR-<uuid>.cfg`, a port forward added and
//! one revoked by `update_config.py`, the processed-file bookkeeping, CheckRouter,
//! CheckS2SVpnConnections, GetRouterMonitorResults, Diagnostics (ping), NetworkUsage get twice
//! with traffic between, an aggregate with one invalid item (non-zero, names it, changes
//! nothing), an MTU change and manage_service. The answers of the query scripts are read by
//! `vr_tests::java_answers`, shared with `cloudstack_query`.

use std::path::Path;
use std::time::{Duration, Instant};

use vr_tests::cloudstack::{install_front_doors, keygen, start_sshd, Hypervisor};
use vr_tests::java_answers;
use vr_tests::peers::Charon;
use vr_tests::traffic::{ping, tcp_probe, tcp_server};
use vr_tests::{agent_binary, require_program, require_root, veth, wait_for, AgentProc, Netns};

const CONTROL: &str = "169.254.3.44";
const UUID: &str = "5d2f1c3a-7e61-4b0a-9d55-3c1f2e6a8b01";

/// `GetDomRVersionAnswer` (core/.../agent/api/GetDomRVersionAnswer via
/// `VirtualRoutingResource.execute(GetDomRVersionCmd)`): `details.split("&")` must give exactly
/// two parts (Java's split drops trailing empty strings); `templateVersion = lines[0]`,
/// `scriptsVersion = lines[1]`.
fn get_domr_version_answer(details: &str) -> Option<(String, String)> {
    let mut parts: Vec<&str> = details.split('&').collect();
    while parts.last() == Some(&"") {
        parts.pop();
    }
    (parts.len() == 2).then(|| (parts[0].to_string(), parts[1].to_string()))
}

/// `CloudStackVersion.trimRouterVersion`: word 3 of the template version if it matches
/// `(\d+\.){2}(\d+\.)?\d+(-[a-zA-Z]+)?(-\d+)?(-SNAPSHOT)?`, else "0"; then compared with
/// `minreq.sysvmtemplate.version` component by component (`CloudStackVersion.compare`).
fn trim_router_version(template: &str) -> Vec<u64> {
    let word = template.split(' ').nth(2).unwrap_or("");
    let numeric: Vec<&str> = word.split('-').next().unwrap_or("").split('.').collect();
    let ok = (3..=4).contains(&numeric.len())
        && numeric
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        numeric.iter().map(|n| n.parse().unwrap()).collect()
    } else {
        vec![0]
    }
}

/// `CheckRouterAnswer.parseDetails`: `startsWith` on the whole output.
fn check_router_answer(details: &str) -> &'static str {
    for s in ["PRIMARY", "BACKUP", "FAULT"] {
        if details.starts_with(&format!("Status: {s}")) {
            return s;
        }
    }
    "UNKNOWN"
}

fn ips() -> String {
    let ip = |a: &str, snat: bool| {
        format!(
            r#"{{"public_ip":"{a}","source_nat":{snat},"add":true,"one_to_one_nat":false,"first_i_p":{snat},"gateway":"192.0.2.2","netmask":"255.255.255.0","vif_mac_address":"06:9a:3c:00:00:12","nic_dev_id":2,"new_nic":false,"nw_type":"public","is_private_gateway":false}}"#
        )
    };
    format!(
        r#"{{"type":"ips","delete_from_processed_cache":false,"ip_address":[{},{},{}]}}"#,
        ip("192.0.2.10", true),
        ip("192.0.2.11", false),
        ip("192.0.2.12", false)
    )
}

/// `forwardrules` with the full list: `(public port, private port, revoked)`.
fn forwards(rules: &[(u16, u16, bool)]) -> String {
    let r: Vec<String> = rules.iter().map(|(p, q, revoke)| format!(r#"{{"revoke":{revoke},"protocol":"tcp","source_ip_address":"192.0.2.11","source_port_range":"{p}:{p}","destination_ip_address":"10.1.1.23","destination_port_range":"{q}:{q}"}}"#)).collect();
    format!(
        r#"{{"type":"forwardrules","delete_from_processed_cache":false,"rules":[{}]}}"#,
        r.join(",")
    )
}

fn firewall() -> String {
    let rule = |id: u32, ip: &str, from: u16, to: u16| {
        format!(
            r#"{{"id":{id},"src_vlan_tag":"vlan://100","src_ip":"{ip}","protocol":"tcp","revoked":false,"already_added":false,"source_cidr_list":["0.0.0.0/0"],"dest_cidr_list":[],"purpose":"Firewall","traffic_type":"Ingress","guest_cidr":"10.1.1.0/24","default_egress_policy":false,"src_port_range":[{from},{to}]}}"#
        )
    };
    format!(
        r#"{{"type":"firewallrules","delete_from_processed_cache":false,"rules":[{},{},{}]}}"#,
        rule(1, "192.0.2.11", 2222, 2222),
        rule(2, "192.0.2.11", 8080, 8090),
        rule(3, "192.0.2.12", 80, 80)
    )
}

fn static_nat(dest: &str) -> String {
    format!(
        r#"{{"type":"staticnatrules","delete_from_processed_cache":false,"rules":[{{"revoke":false,"source_ip_address":"192.0.2.12","source_port_range":"0:0","destination_ip_address":"{dest}"}}]}}"#
    )
}

const GUEST: &str = r#"{"type":"guestnetwork","delete_from_processed_cache":false,"add":true,"mac_address":"02:00:3b:6e:00:05","device":"eth0","router_guest_ip":"10.1.1.1","router_guest_netmask":"255.255.255.0","router_guest_gateway":"10.1.1.1","cidr":"24","dns":"10.1.1.1","domain_name":"cs1cloud.internal","is_vr_guest_gateway":false,"network_id":204}"#;
const S2S: &str = r#"{"type":"site2sitevpn","delete_from_processed_cache":false,"local_public_ip":"192.0.2.10","local_guest_cidr":"10.1.1.0/24","local_public_gateway":"192.0.2.2","peer_gateway_ip":"203.0.113.5","peer_guest_cidr_list":"172.16.0.0/16","esp_policy":"aes128-sha1;modp1536","ike_policy":"aes128-sha1;modp1536","ipsec_psk":"dropin-Test-psk-7Qx","ike_lifetime":86400,"esp_lifetime":3600,"create":true,"dpd":true,"passive":true,"encap":false,"split_connections":false}"#;
const VMDATA: &str = r#"{"type":"vmdata","delete_from_processed_cache":false,"vm_ip_address":"10.1.1.23","vm_metadata":[["userdata","user-data","aGVsbG8="],["metadata","instance-id","i-2-23-VM"],["metadata","local-hostname","web-1"]]}"#;
const DHCP: &str = r#"{"type":"dhcpentry","delete_from_processed_cache":false,"host_name":"web-1","mac_address":"02:00:4c:5a:00:01","ipv4_address":"10.1.1.23","default_gateway":"10.1.1.1","default_entry":true,"remove":false}"#;

/// A `VR-<uuid>.cfg` container as `VirtualRoutingResource` writes it: each payload as a
/// `<file>` and the `update_config.py` call that applies it.
fn aggregate(items: &[(&str, String)]) -> String {
    let mut s =
        String::from("#Apache CloudStack Virtual Router Config File\n<version>\n1.0\n</version>\n");
    for (i, (name, json)) in items.iter().enumerate() {
        let f = format!("{name}.{UUID}-{i}");
        s += &format!("<file>\n/var/cache/cloud/{f}\n{json}\n</file>\n<script>\n/opt/cloud/bin/update_config.py {f}\n</script>\n");
    }
    s
}

fn sha512_hex(path: &Path) -> String {
    let out = std::process::Command::new("sha512sum")
        .arg(path)
        .output()
        .expect("sha512sum");
    String::from_utf8_lossy(&out.stdout)
        .split(' ')
        .next()
        .unwrap_or("")
        .to_string()
}

fn generation(agent: &AgentProc) -> u64 {
    let out = agent.cli(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status json");
    v["generation"].as_u64().expect("generation")
}

#[test]
fn cloudstack_drives_the_router_over_ssh() {
    if !require_root("cloudstack_dropin")
        || !require_program("cloudstack_dropin", "/usr/sbin/sshd")
        || !require_program("cloudstack_dropin", "/usr/lib/ipsec/charon")
    {
        return;
    }
    let t0 = Instant::now();
    let step = |what: &str| eprintln!("[{:>5.1}s] {what}", t0.elapsed().as_secs_f32());
    let dir = tempfile::Builder::new()
        .prefix("vr-dropin")
        .tempdir()
        .unwrap();
    let d = dir.path();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cache = d.join("varcache/cloud");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::create_dir_all(d.join("opt")).unwrap();
    install_front_doors(&d.join("opt"), &agent_binary());

    // Topology.
    let mut vr = Netns::new("csvr");
    let hv = Netns::new("cshv");
    let mut vm = Netns::new("csvm");
    let ext = Netns::new("csext");
    veth(&vm, "lan0", &vr, "eth0");
    veth(&hv, "eth0", &vr, "eth1");
    veth(&ext, "wan0", &vr, "eth2");
    for (dev, mac) in [
        ("eth0", "02:00:3b:6e:00:05"),
        ("eth1", "0e:00:a9:fe:03:2c"),
        ("eth2", "06:9a:3c:00:00:12"),
    ] {
        vr.ip(&["link", "set", dev, "address", mac]);
    }
    vm.ip(&["link", "set", "lan0", "address", "02:00:4c:5a:00:01"]);
    vm.ip(&["addr", "add", "10.1.1.23/24", "dev", "lan0"]);
    vm.ip(&["addr", "add", "10.1.1.24/24", "dev", "lan0"]);
    vm.ip(&["route", "add", "default", "via", "10.1.1.1"]);
    hv.ip(&["addr", "add", "169.254.0.1/16", "dev", "eth0"]);
    ext.ip(&["addr", "add", "192.0.2.2/24", "dev", "wan0"]);
    let charon = Charon::start(&mut vr, &d.join("charon"));

    // The management server's key, as `authorized_key` carries it (base64, RSA).
    let key = d.join("id_rsa.cloud");
    keygen(&key, "rsa");
    let pubkey = std::fs::read_to_string(key.with_extension("cloud.pub")).unwrap();
    let b64 = String::from_utf8(
        std::process::Command::new("base64")
            .args(["-w0"])
            .arg(key.with_extension("cloud.pub"))
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let cmdline = format!("template=domP name=r-4-VM eth0ip=10.1.1.1 eth0mask=255.255.255.0 eth1ip={CONTROL} eth1mask=255.255.0.0 eth2ip=192.0.2.10 eth2mask=255.255.255.0 gateway=192.0.2.2 publicMtu=1500 privateMtu=1500 domain=cs1cloud.internal cidrsize=24 dhcprange=10.1.1.1 type=router disable_rp_filter=true dns1=192.0.2.2 authorized_key={b64}");
    let authorized_keys = d.join("root-ssh/authorized_keys");

    // The agent, configured for this test's CloudStack directory and key file.
    let mut agent = AgentProc::new(Some(&vr.name));
    std::fs::write(
        agent.dir.path().join("config.toml"),
        format!(
            "cloudstack-dir = \"{}\"\n",
            d.join("no-cloudstack-yet").display()
        ),
    )
    .unwrap();
    agent.extra_args = vec![
        "--vici-socket".into(),
        charon.vici_socket.display().to_string(),
    ];
    // Config of the front doors run by sshd: the agent's socket and state; /var/cache/cloud is
    // the real path inside sshd's mount namespace.
    let frontdoor = d.join("frontdoor.toml");
    std::fs::write(
        &frontdoor,
        format!(
            "state-dir = \"{}\"\nsocket = \"{}\"\nrun-dir = \"{}\"\n",
            agent.state_dir.display(),
            agent.socket.display(),
            agent.run_dir.display()
        ),
    )
    .unwrap();

    // 0. What a previous start of this router left in the stored state: a port forward the
    // management server no longer sends (the agent ran without a CloudStack directory).
    step("previous start's state");
    agent.start();
    let (rc, r) = agent.apply_text("old.json", &forwards(&[(7777, 22, false)]));
    assert_eq!(rc, 0, "{r}");
    agent.stop();
    std::fs::write(
        agent.dir.path().join("config.toml"),
        format!(
            "cloudstack-dir = \"{}\"\ncmdline-wait = 30\nauthorized-keys = \"{}\"\n",
            cache.display(),
            authorized_keys.display()
        ),
    )
    .unwrap();

    // 1. Boot: the guest agent writes the cmdline a moment after the agent started; the agent
    // waits for it before it serves anything, and starts the router afresh from it.
    step("agent start, cmdline through the guest agent's path");
    let cmdline_path = cache.join("cmdline");
    let writer = {
        let (p, text) = (cmdline_path.clone(), cmdline.clone());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(800));
            std::fs::write(p, text + "\n").unwrap();
        })
    };
    agent.start();
    writer.join().unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || cache
            .join("boot_up_done")
            .exists()),
        "no boot_up_done; log:\n{}",
        agent.log_text()
    );
    assert_eq!(std::fs::read_to_string(&authorized_keys).unwrap(), pubkey);
    let mode = std::fs::metadata(&authorized_keys)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "authorized_keys mode");
    assert!(!agent.log_text().contains(b64.trim()), "the key was logged");
    let addrs = vr.ip(&["-4", "-o", "addr", "show", "dev", "eth1"]);
    assert!(
        addrs.contains(&format!("{CONTROL}/16")),
        "cmdline not applied: {addrs}"
    );
    let state = agent.cli(&["show", "state", "--json"]);
    let state = String::from_utf8_lossy(&state.stdout);
    assert!(state.contains("r-4-VM"), "no state: {state}");
    assert!(
        !state.contains("7777"),
        "the previous start's port forward survived the new cmdline"
    );

    // sshd as vr-ssh-listen starts it in the image: on the control address, once it exists.
    step("sshd on the control address");
    start_sshd(&mut vr, d, CONTROL, &authorized_keys, &frontdoor);
    let hv = Hypervisor {
        ns: &hv,
        key: key.clone(),
        router: CONTROL.into(),
    };
    // router_proxy.sh's check_gw.
    assert!(
        ping(hv.ns, CONTROL, 1),
        "the control address does not answer ping"
    );
    // sshd listens on the control address only.
    let listening = vr.exec_ok("ss", &["-ltnH"]);
    assert!(
        !listening.contains("0.0.0.0:3922") && !listening.contains("192.0.2.10:3922"),
        "{listening}"
    );

    // 2. The patch files (FileUtil.scpPatchFiles): accepted, never run.
    step("patch files by scp -t -d");
    let scripts_tgz = b"\x1f\x8b not really a tarball".to_vec();
    hv.scp_put("/var/cache/cloud/", "agent.zip", b"PK\x05\x06zip", "0600");
    hv.scp_put(
        "/var/cache/cloud/",
        "cloud-scripts.tgz",
        &scripts_tgz,
        "0600",
    );
    hv.scp_put(
        "/var/cache/cloud/",
        "patch-sysvms.sh",
        b"#!/bin/sh\ntouch /tmp/vr-dropin-patched\nexit 1\n",
        "0755",
    );
    assert_eq!(
        std::fs::read(cache.join("cloud-scripts.tgz")).unwrap(),
        scripts_tgz
    );
    assert_eq!(hv.scp_get("/var/cache/cloud/agent.zip"), b"PK\x05\x06zip");

    // 3. GetDomRVersionCmd.
    step("get_template_version.sh");
    let (rc, out) = hv.run("get_template_version.sh", "");
    assert_eq!(rc, 0, "{out}");
    let (template, scripts) = get_domr_version_answer(&out).expect("GetDomRVersionAnswer: one '&'");
    let version = trim_router_version(&template);
    assert!(
        version >= vec![4, 10, 0],
        "trimRouterVersion({template:?}) = {version:?}"
    );
    assert_eq!(
        scripts.trim_end(),
        sha512_hex(&cache.join("cloud-scripts.tgz"))
    );
    eprintln!("  GetDomRVersionAnswer: template {template:?}, version {version:?}");

    // NetworkUsageCommand create (isolated router start): a no-op that must exit 0.
    step("netusage.sh -c");
    assert_eq!(hv.run("netusage.sh", "-c").0, 0);

    // 4. The router-start aggregate.
    step("vr_cfg.sh -c VR-<uuid>.cfg");
    let vm_s = &mut vm;
    tcp_server(vm_s, "10.1.1.23", 22);
    tcp_server(vm_s, "10.1.1.23", 81);
    tcp_server(vm_s, "10.1.1.24", 80);
    let cfg = aggregate(&[
        (
            "cmd_line.json",
            format!(
                r#"{{"type":"cmdline","delete_from_processed_cache":false,"cmd_line":{{"type":"router","name":"r-4-VM","eth0ip":"10.1.1.1","eth0mask":"255.255.255.0","eth1ip":"{CONTROL}","eth1mask":"255.255.0.0","eth2ip":"192.0.2.10","eth2mask":"255.255.255.0","gateway":"192.0.2.2","domain":"cs1cloud.internal","dns1":"192.0.2.2"}}}}"#
            ),
        ),
        ("ip_associations.json", ips()),
        ("guest_network.json", GUEST.into()),
        ("forwarding_rules.json", forwards(&[(2222, 22, false)])),
        ("firewall_rules.json", firewall()),
        ("staticnat_rules.json", static_nat("10.1.1.24")),
        ("site_2_site_vpn.json", S2S.into()),
        ("vm_metadata.json", VMDATA.into()),
        ("vm_dhcp_entry.json", DHCP.into()),
    ]);
    let cfg_name = format!("VR-{UUID}.cfg");
    hv.scp_put("/var/cache/cloud/", &cfg_name, cfg.as_bytes(), "0600");
    let (rc, out) = hv.run("vr_cfg.sh", &format!("-c /var/cache/cloud/{cfg_name}"));
    assert_eq!(rc, 0, "vr_cfg.sh: {out}\nagent log:\n{}", agent.log_text());
    assert!(
        !cache.join(&cfg_name).exists() && cache.join(format!("processed/{cfg_name}.gz")).exists()
    );
    let probe = |port: u16| tcp_probe(&ext, "192.0.2.11", port, Duration::from_secs(2));
    let greeting = probe(2222).expect("port forward 192.0.2.11:2222 -> 10.1.1.23:22");
    assert!(greeting.contains("local=10.1.1.23:22"), "{greeting}");
    let greeting = tcp_probe(&ext, "192.0.2.12", 80, Duration::from_secs(2)).expect("static NAT");
    assert!(greeting.contains("local=10.1.1.24:80"), "{greeting}");
    let state = agent.cli(&["show", "state", "--json"]);
    let state: serde_json::Value = serde_json::from_slice(&state.stdout).unwrap();
    let state_text = state.to_string();
    assert!(
        state_text.contains("203.0.113.5"),
        "site-to-site VPN not in the state"
    );
    assert!(
        state_text.contains("02:00:4c:5a:00:01"),
        "DHCP entry not in the state"
    );
    assert!(!state_text.contains("dropin-Test-psk-7Qx"), "PSK shown");

    // 5. Single commands: a port forward added, then revoked (the full list each time).
    step("update_config.py: forward added, then revoked");
    let add = format!("forwarding_rules.json.{UUID}-add");
    hv.scp_put(
        "/var/cache/cloud/",
        &add,
        forwards(&[(2222, 22, false), (8081, 81, false)]).as_bytes(),
        "0600",
    );
    let (rc, out) = hv.run("update_config.py", &add);
    assert_eq!(rc, 0, "{out}");
    assert!(probe(8081)
        .expect("added forward")
        .contains("local=10.1.1.23:81"));
    // A retry of a processed file succeeds without applying anything.
    let generation_now = generation(&agent);
    assert_eq!(hv.run("update_config.py", &add).0, 0);
    assert_eq!(generation(&agent), generation_now);
    assert!(cache.join(format!("processed/{add}.gz")).exists());
    let revoke = format!("forwarding_rules.json.{UUID}-revoke");
    hv.scp_put(
        "/var/cache/cloud/",
        &revoke,
        forwards(&[(2222, 22, false), (8081, 81, true)]).as_bytes(),
        "0600",
    );
    // `false`: deleteFromProcessedCache (the file is deleted, not kept gzipped).
    let (rc, out) = hv.run("update_config.py", &format!("{revoke} false"));
    assert_eq!(rc, 0, "{out}");
    assert!(
        probe(8081).is_err(),
        "revoked forward still carries traffic"
    );
    assert!(probe(2222).is_ok(), "the other forward went with it");
    assert!(
        !cache.join(&revoke).exists() && !cache.join(format!("processed/{revoke}.gz")).exists()
    );
    // A file that never arrived fails (the Java's scp failed: the command must fail).
    assert_eq!(
        hv.run("update_config.py", "forwarding_rules.json.never-sent")
            .0,
        1
    );
    assert_eq!(hv.run("update_config.py", "").0, 1);

    // 6. CheckRouterCommand.
    step("checkrouter.sh");
    let (rc, out) = hv.run("checkrouter.sh", "");
    assert_eq!((rc, check_router_answer(&out)), (0, "PRIMARY"), "{out}");

    // 6b. The queries of the management server's periodic tasks, over SSH like the rest.
    // CheckS2SVpnConnectionsCommand: the pushed peer (no IKE peer runs there) is not connected.
    step("checkbatchs2svpn.sh, getRouterMonitorResults.sh, diagnostics.py, netusage.sh -g");
    let (rc, out) = hv.run("checkbatchs2svpn.sh", "203.0.113.5 ");
    let peers = java_answers::s2s(rc == 0, &out);
    assert_eq!(peers.get("203.0.113.5"), Some(&false), "{out}");
    // GetRouterMonitorResultsCommand: filesystem check first, then fresh results.
    assert_eq!(hv.run("filesystem_writable_check.py", "").0, 0);
    let (rc, out) = hv.run("getRouterMonitorResults.sh", "true");
    assert_eq!(rc, 0, "{out}");
    let (_failing, results) = java_answers::monitor(&out);
    assert!(results["basic"].is_object(), "{out}");
    // DiagnosticsCommand: ping of the guest VM from the router.
    let (rc, out) = hv.run("diagnostics.py", "ping 10.1.1.23");
    assert_eq!(rc, 0, "{out}");
    let (stdout, _, code) = java_answers::diagnostics(&out);
    assert_eq!(code, "0", "{out}");
    assert!(stdout.contains("4 packets transmitted"), "{out}");
    // NetworkUsageCommand get, twice with traffic between: the VM pings the public side
    // through source NAT; sent and received grow by at least the bytes of the echoes.
    let (rc, out) = hv.run("netusage.sh", "-g");
    let before = java_answers::network_stats(rc == 0, &out);
    let echoes = vm.exec(
        "ping",
        &["-c", "10", "-i", "0.2", "-s", "1000", "-q", "192.0.2.2"],
    );
    assert!(echoes.status.success(), "ping through source NAT");
    let (rc, out) = hv.run("netusage.sh", "-g");
    let after = java_answers::network_stats(rc == 0, &out);
    assert!(
        after.0 >= before.0 + 10 * 1000 && after.1 >= before.1 + 10 * 1000,
        "NetworkUsageAnswer before {before:?}, after {after:?}"
    );
    eprintln!("  NetworkUsageAnswer: {before:?} -> {after:?} (sent, received)");

    // 7. An aggregate with one invalid item: non-zero, the item named, nothing changed.
    step("vr_cfg.sh with an invalid item");
    let before = generation(&agent);
    let bad = aggregate(&[
        (
            "forwarding_rules.json",
            forwards(&[(2222, 22, false), (8085, 81, false)]),
        ),
        ("staticnat_rules.json", static_nat("10.1.1.300")),
    ]);
    let bad_name = format!("VR-{UUID}-bad.cfg");
    hv.scp_put("/var/cache/cloud/", &bad_name, bad.as_bytes(), "0600");
    let (rc, out) = hv.run("vr_cfg.sh", &format!("-c /var/cache/cloud/{bad_name}"));
    assert_ne!(rc, 0, "an aggregate with an invalid item succeeded: {out}");
    assert!(
        out.contains("aggregate[1]") && out.contains("staticnat_rules.json"),
        "the item is not named: {out}"
    );
    assert!(out.contains("10.1.1.300"), "{out}");
    assert_eq!(
        generation(&agent),
        before,
        "the failed aggregate changed the state"
    );
    assert!(
        probe(8085).is_err(),
        "the valid item of the failed aggregate was applied"
    );
    assert!(
        cache.join(&bad_name).exists(),
        "a failed aggregate must stay for the retry"
    );

    // 8. UpdateNetworkCommand: the MTU goes into the desired state (and guest DHCP option 26).
    step("update_interface_config.sh");
    let (rc, out) = hv.run("update_interface_config.sh", "10.1.1.1 24 1450 15");
    assert_eq!((rc, out.as_str()), (0, "eth0\n"));
    let link = vr.ip(&["link", "show", "dev", "eth0"]);
    assert!(link.contains("mtu 1450"), "{link}");
    let dnsmasq =
        std::fs::read_to_string(agent.run_dir.join("dnsmasq/dnsmasq.conf")).unwrap_or_default();
    assert!(
        dnsmasq.contains("option:mtu,1450"),
        "DHCP does not advertise the MTU:\n{dnsmasq}"
    );
    let (rc, out) = hv.run("update_interface_config.sh", "10.9.9.9 24 1450 15");
    assert_eq!(rc, 1, "{out}");
    assert!(
        out.contains("Interface with IP 10.9.9.9 not found"),
        "{out}"
    );

    // 9. ManageServiceCommand.
    step("manage_service.sh");
    assert_eq!(hv.run("manage_service.sh", "start keepalived").0, 0);
    assert_eq!(hv.run("manage_service.sh", "stop keepalived").0, 0);
    assert_eq!(hv.run("manage_service.sh", "start ssh").0, 1);
    assert_eq!(hv.run("bumpup_priority.sh", "").0, 0);

    // 10. The agent restarted later in the same boot: no wait, the cmdline is not applied
    // again, boot_up_done stays, the applied state is replayed.
    step("agent restart in the same boot");
    let before = generation(&agent);
    agent.stop();
    let restart = Instant::now();
    agent.start();
    assert!(
        restart.elapsed() < Duration::from_secs(10),
        "the restarted agent waited for a cmdline"
    );
    assert_eq!(generation(&agent), before, "the cmdline was applied again");
    assert!(cache.join("boot_up_done").exists());
    assert!(probe(2222).is_ok(), "the forward is gone after the restart");
    assert_eq!(hv.run("checkrouter.sh", "").0, 0);

    // Nothing the hypervisor sent was run.
    assert!(!Path::new("/tmp/vr-dropin-patched").exists());
    // The whole sequence is meant to stay under a minute; a loaded CI machine is told, not
    // failed.
    step("done");
}
