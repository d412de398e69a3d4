//! The pushes of the secrets scan: one unique marker per secret and per way in, so a leak
//! names exactly which secret leaked from which push.

/// Site-to-site PSK, native, through the socket.
pub const PSK_NATIVE: &str = "scan-native-psk-Hq27Tz";
/// Site-to-site PSK, CloudStack `site2sitevpn`.
pub const PSK_CS: &str = "scan-cloudstack-psk-Vw81Rd";
/// Site-to-site PSK, native, through the spool.
pub const PSK_SPOOL: &str = "scan-spool-psk-Mn55Pk";
/// Site-to-site PSK of a rejected push.
pub const PSK_BAD: &str = "scan-rejected-psk-Jx03Ls";
/// OSPF md5 key, native (reaches FRR).
pub const OSPF_KEY: &str = "ospfK3y9Qz";
/// OSPF md5 key inside an `authentication` object that is rejected.
pub const OSPF_BAD: &str = "ospfBadK7Wm";
/// Remote-access VPN PSK (`remoteaccessvpn`).
pub const RA_PSK: &str = "scan-ra-psk-Tg62Xe";
/// Remote-access PSK of a rejected `remoteaccessvpn`.
pub const RA_BAD: &str = "scan-ra-rejected-Lf40Pa";
/// VM password (`vmpassword`), through the spool.
pub const VM_PW: &str = "scan-vm-password-Rk19Hu";
/// VM password of a rejected `vmpassword`.
pub const VM_PW_BAD: &str = "scan-vm-pw-rejected-Qd73";
/// User data (`vmdata`), base64 as CloudStack sends it ("scan-user-data-Pc84Wn").
pub const USER_DATA: &str = "c2Nhbi11c2VyLWRhdGEtUGM4NFdu";
/// The same user data as the guest gets it (decoded): served to the VM, nowhere else.
pub const USER_DATA_DECODED: &str = "scan-user-data-Pc84Wn";
/// Remote-access VPN user password (`vpnuserlist`).
pub const VPN_USER_PW: &str = "scan-vpn-user-pw-Ys27Nb";
/// Remote-access user password, native `vpn.remote_users`.
pub const RA_NATIVE_PW: &str = "scan-ra-native-pw-Bq71Ce";
/// Part of the private scalar of [`RA_KEY_PEM`] (the rest of a PKCS#8 P-256 key is a
/// standard header or the public key, which the certificate shows too).
pub const RA_KEY_MARKER: &str = "u9cmPZV2BsqNttgp";
/// The remote-access gateway's private key (a test key made for this scan) and its
/// self-signed certificate (SAN IP 192.0.2.10, serverAuth, valid until 2036).
pub const RA_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgu9cmPZV2BsqNttgp\nTS50sLLtkRXcfrf+bDv4wuZakGGhRANCAART+RLgOhW3m9efqHBOKXtcQ/6SFUnj\nKzoNRbGptS8GNHRFzGD6oXD95PCFpueB0cpg+42pBDhsSn+ObhvuEi6U\n-----END PRIVATE KEY-----\n";
pub const RA_CERT_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBqzCCAVGgAwIBAgIUF8JhduZb7XApoQkeUXCRSkgnra8wCgYIKoZIzj0EAwIw\nGDEWMBQGA1UEAwwNc2Nhbi52cG4udGVzdDAeFw0yNjExMzAxNTQ5MjJaFw0zNjEx\nMjcxNTQ5MjJaMBgxFjAUBgNVBAMMDXNjYW4udnBuLnRlc3QwWTATBgcqhkjOPQIB\nBggqhkjOPQMBBwNCAART+RLgOhW3m9efqHBOKXtcQ/6SFUnjKzoNRbGptS8GNHRF\nzGD6oXD95PCFpueB0cpg+42pBDhsSn+ObhvuEi6Uo3kwdzAdBgNVHQ4EFgQUqMLF\nV2Wfjd5Yb62pE7kLbSgse2AwHwYDVR0jBBgwFoAUqMLFV2Wfjd5Yb62pE7kLbSgs\ne2AwDwYDVR0TAQH/BAUwAwEB/zAPBgNVHREECDAGhwTAAAIKMBMGA1UdJQQMMAoG\nCCsGAQUFBwMBMAoGCCqGSM49BAMCA0gAMEUCIQC+X0GBupy19fSB1YCkjzDpKoqi\nIv18zaIcZzGEs+f4mwIgVYe9UNjFwtFVSP6p2xc3pSjM6neON9O5kE7a7k1D6a0=\n-----END CERTIFICATE-----\n";
/// VRRP password and a secret boot argument (`cmdline`).
pub const CMD_ROUTER_PW: &str = "scan-vrrp-pw-Ka58Jc";
pub const CMD_KEY: &str = "scan-boot-key-Wu36Dr";
/// VRRP password of a native `ha` section: 8 characters, all that VRRPv2 carries, so that
/// keepalived.conf holds the whole marker.
pub const HA_PW: &str = "scHaV7qZ";
/// BGP peer password (`bgppeers`).
pub const BGP_PW: &str = "scan-bgp-pw-Ze14Mv";

/// TLS private key of a load balancer (`loadbalancer` `ssl_certs`): written 0600 for haproxy.
pub const TLS_KEY: &str = "scan-tls-key-Fr38Wd";

/// Site-to-site PSK inside a malformed `VR-<uuid>.cfg` container (rejected).
pub const PSK_AGG_BAD: &str = "scan-aggregate-psk-Ub93Fo";

/// The value of a field this agent does not know (a newer CloudStack's): ignored, so it is
/// nowhere, not even in the state; the log names the field only.
pub const UNKNOWN_FIELD: &str = "scan-unknown-field-value-Gv52";

/// (marker, kind) of every secret: the scan reports leaks by kind.
pub const SECRETS: &[(&str, &str)] = &[
    (PSK_NATIVE, "site-to-site PSK (native)"),
    (PSK_CS, "site-to-site PSK (CloudStack)"),
    (PSK_SPOOL, "site-to-site PSK (spool)"),
    (PSK_BAD, "site-to-site PSK (rejected push)"),
    (OSPF_KEY, "OSPF key"),
    (OSPF_BAD, "OSPF key (rejected push)"),
    (RA_PSK, "remote-access PSK"),
    (RA_BAD, "remote-access PSK (rejected push)"),
    (VM_PW, "VM password (spool)"),
    (VM_PW_BAD, "VM password (rejected push)"),
    (USER_DATA, "user data"),
    (USER_DATA_DECODED, "user data (decoded)"),
    (VPN_USER_PW, "VPN user password"),
    (RA_NATIVE_PW, "VPN user password (native)"),
    (RA_KEY_MARKER, "remote-access certificate key"),
    (CMD_ROUTER_PW, "cmdline router_password"),
    (CMD_KEY, "cmdline *key"),
    (BGP_PW, "BGP password"),
    (TLS_KEY, "TLS private key"),
    (HA_PW, "VRRP password (native ha)"),
    (PSK_AGG_BAD, "site-to-site PSK (rejected container)"),
    (UNKNOWN_FIELD, "value of an unknown field"),
];

/// A native push: the public NIC, one site-to-site connection and OSPF with an md5 key.
pub fn native(psk: &str, peer: &str, ike: &str) -> String {
    format!(
        r#"{{"schema":1,"interfaces":[{{"device":"eth2","role":"public","addresses":["192.0.2.10/24"]}},
        {{"device":"eth0","role":"guest","addresses":["10.1.1.1/24"]}}],
        "vpn":{{"site_to_site":[{{"local_public_ip":"192.0.2.10","local_cidrs":["10.1.1.0/24"],
        "peer_gateway":"{peer}","peer_cidrs":["10.2.0.0/24"],"psk":"{psk}","ike_policy":"{ike}",
        "esp_policy":"aes128-sha1","passive":true}}]}},
        "ospf":{{"router_id":"192.0.2.10","areas":[{{"id":"0.0.0.0","authentication":"md5"}}],
        "interfaces":[{{"device":"eth2","authentication":{{"type":"md5","key_id":1,"password":"{OSPF_KEY}"}}}}],
        "networks":[{{"prefix":"192.0.2.0/24","area":"0.0.0.0"}}]}}}}"#
    )
}

/// A native push whose OSPF `authentication` object lacks its key id: rejected at the object.
pub fn ospf_rejected() -> String {
    format!(
        r#"{{"schema":1,"ospf":{{"router_id":"192.0.2.10","areas":[{{"id":"0.0.0.0"}}],
        "interfaces":[{{"device":"eth2","authentication":{{"type":"md5","password":"{OSPF_BAD}"}}}}]}}}}"#
    )
}

pub fn site2site(psk: &str) -> String {
    format!(
        r#"{{"type":"site2sitevpn","local_public_ip":"192.0.2.10","local_guest_cidr":"10.1.1.0/24",
        "local_public_gateway":"192.0.2.1","peer_gateway_ip":"203.0.113.9","peer_guest_cidr_list":"10.9.0.0/16",
        "esp_policy":"aes128-sha1;modp1536","ike_policy":"aes128-sha1;modp1536","ipsec_psk":"{psk}",
        "ike_lifetime":86400,"esp_lifetime":3600,"create":true,"dpd":true,"passive":true,"encap":false,
        "split_connections":false}}"#
    )
}

/// A native remote-access VPN whose gateway proves itself with a certificate, and one user.
pub fn ra_native() -> String {
    let v = serde_json::json!({"schema": 1, "vpn": {
        "remote_access": {"server_ip": "192.0.2.10", "pool_first": "10.1.2.1", "pool_last": "10.1.2.8",
            "local_cidrs": ["10.1.1.0/24"], "psk": RA_PSK,
            "certificate": {"cert_pem": RA_CERT_PEM, "key_pem": RA_KEY_PEM}},
        "remote_users": [{"name": "carol", "password": RA_NATIVE_PW}]}});
    v.to_string()
}

/// `remoteaccessvpn`; `range` invalid makes it rejected.
pub fn remote_access(psk: &str, range: &str) -> String {
    format!(
        r#"{{"type":"remoteaccessvpn","delete_from_processed_cache":false,"create":true,"ip_range":"{range}",
        "preshared_key":"{psk}","vpn_server_ip":"192.0.2.10","local_ip":"10.1.1.1","local_cidr":"10.1.1.0/24",
        "public_interface":"eth2"}}"#
    )
}

/// `vmpassword`; an invalid `ip` makes it rejected.
pub fn vm_password(pw: &str, ip: &str) -> String {
    format!(
        r#"{{"type":"vmpassword","delete_from_processed_cache":true,"ip_address":"{ip}","password":"{pw}"}}"#
    )
}

pub fn vm_data() -> String {
    format!(
        r#"{{"type":"vmdata","delete_from_processed_cache":false,"vm_ip_address":"10.1.1.23",
        "vm_new_field":"{UNKNOWN_FIELD}",
        "vm_metadata":[["userdata","user-data","{USER_DATA}"],["metadata","instance-id","i-2-23-VM"]]}}"#
    )
}

pub fn vpn_users() -> String {
    format!(
        r#"{{"type":"vpnuserlist","delete_from_processed_cache":false,
        "vpn_users":[{{"user":"alice","password":"{VPN_USER_PW}","add":true}}]}}"#
    )
}

/// `cmdline` with only non-addressing keys, plus a field a newer CloudStack might add.
pub fn cmdline() -> String {
    format!(
        r#"{{"type":"cmdline","delete_from_processed_cache":false,"some_future_field":1,
        "cmd_line":{{"type":"router","name":"r-7-VM","router_password":"{CMD_ROUTER_PW}",
        "baremetalnotificationsecuritykey":"{CMD_KEY}"}}}}"#
    )
}

pub fn bgp_peers() -> String {
    format!(
        r#"{{"type":"bgppeers","delete_from_processed_cache":false,"peers":[{{"peer_id":1,
        "peer_as_number":65001,"ip4_address":"192.0.2.50","peer_password":"{BGP_PW}",
        "network_as_number":65000,"guest_ip4_cidr":"10.1.1.0/24"}}]}}"#
    )
}

/// CloudStack's `loadbalancer` with a certificate and its key (the listener does not offload
/// TLS, so haproxy's check does not read this placeholder key).
pub fn load_balancer() -> String {
    format!(
        r#"{{"type":"loadbalancer","delete_from_processed_cache":false,"rules":[{{"configuration":
        ["global","\tuser haproxy","\t ","defaults","\tmode    tcp","\ttimeout connect    5000",
         "\ttimeout client     50000","\ttimeout server     50000","\t ","listen 0_0_0_0-8443",
         "\tbind 0.0.0.0:8443","\tbalance roundrobin","\tserver 0_0_0_0-8443_0 10.1.1.5:443 check","\t "],
        "add_rules":["192.0.2.10:8443:"],"remove_rules":[],"stat_rules":[],
        "ssl_certs":[{{"name":"web","cert":"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
        "key":"-----BEGIN PRIVATE KEY-----\n{TLS_KEY}\n-----END PRIVATE KEY-----"}}]}}]}}"#
    )
}

/// A router-start container whose site-to-site part lost its path line (the payload is taken
/// for the path) and carries a stray payload line: rejected whole, both lines quoted.
pub fn aggregate_rejected() -> String {
    let part = site2site(PSK_AGG_BAD).replace('\n', " ");
    format!(
        "#Apache CloudStack Virtual Router Config File\n<version>\n1.0\n</version>\n<file>\n{part}\n{part}\n</file>\n{part}\n"
    )
}

/// A redundant pair on the guest NIC: keepalived runs with the VRRP password in its 0600
/// config.
pub fn ha_push() -> String {
    format!(
        r#"{{"schema":1,"ha":{{"router-id":9,"password":"{HA_PW}",
        "instances":[{{"device":"eth0","vips":["10.1.1.254/24"]}}]}}}}"#
    )
}
