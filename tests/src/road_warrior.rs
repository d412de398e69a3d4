//! Road warriors for the remote-access VPN test: a namespace on the switch with its own
//! charon, configured as an IKEv2 EAP-MSCHAPv2 client (gateway by PSK or by a certificate) and
//! an IKEv1 PSK + XAuth client of the router at [`SERVER`]; and a gateway certificate made
//! with openssl.

use std::path::Path;
use std::time::Instant;

use crate::peers::Charon;
use crate::{veth, Netns};

/// The VPN server IP the road warriors dial.
pub const SERVER: &str = "192.0.2.10";
/// Another address of the router's public NIC: not the VPN's.
pub const OTHER: &str = "192.0.2.11";
/// The group PSK the road warriors know.
pub const RA_PSK: &str = "ravpn-test-group-psk-Zt31";

/// A road warrior: a namespace on the switch with its own charon.
#[derive(Debug)]
pub struct Warrior {
    pub ns: Netns,
    pub charon: Charon,
}

pub fn warrior(sw: &Netns, dir: &Path, n: u8) -> Warrior {
    let mut ns = Netns::new(&format!("rw{n}"));
    veth(&ns, "eth0", sw, &format!("pw{n}"));
    sw.ip(&["link", "set", &format!("pw{n}"), "master", "br0"]);
    ns.ip(&[
        "addr",
        "add",
        &format!("192.0.2.{}/24", 100 + n),
        "dev",
        "eth0",
    ]);
    let charon = Charon::start(&mut ns, &dir.join(format!("rw{n}")));
    Warrior { ns, charon }
}

impl Warrior {
    /// Loads the client config: connections `v2` (IKEv2 EAP-MSCHAPv2, gateway by PSK and
    /// its IP) and `v1` (IKEv1 main mode PSK + XAuth), as `user` with `password`.
    pub fn configure(&self, user: &str, password: &str) {
        self.configure_with(user, password, None)
    }

    /// As [`Warrior::configure`], plus connection `v2cert` (IKEv2 EAP-MSCHAPv2, gateway by a
    /// certificate issued by the CA in `ca`) when `ca` is given.
    pub fn configure_with(&self, user: &str, password: &str, ca: Option<&Path>) {
        let conf = self.charon.dir.join("swanctl.conf");
        let v2cert = ca.map_or(String::new(), |ca| {
            format!(
                r#"  v2cert {{
    version = 2
    remote_addrs = {SERVER}
    vips = 0.0.0.0
    encap = yes
    send_certreq = yes
    local {{
      auth = eap-mschapv2
      id = {user}
    }}
    remote {{
      auth = pubkey
      id = {SERVER}
      cacerts = {}
    }}
    children {{
      v2cert {{
        remote_ts = 10.1.1.0/24
        esp_proposals = aes128gcm16
      }}
    }}
  }}
"#,
                ca.display()
            )
        });
        let text = format!(
            r#"connections {{
{v2cert}  other {{
    version = 2
    remote_addrs = {OTHER}
    vips = 0.0.0.0
    encap = yes
    local {{
      auth = eap-mschapv2
      id = {user}
    }}
    remote {{
      auth = psk
      id = {SERVER}
    }}
    children {{
      other {{
        remote_ts = 10.1.1.0/24
      }}
    }}
  }}
  v2 {{
    version = 2
    remote_addrs = {SERVER}
    vips = 0.0.0.0
    encap = yes
    local {{
      auth = eap-mschapv2
      id = {user}
    }}
    remote {{
      auth = psk
      id = {SERVER}
    }}
    children {{
      v2 {{
        remote_ts = 10.1.1.0/24
        esp_proposals = aes128gcm16
      }}
    }}
  }}
  v1 {{
    version = 1
    remote_addrs = {SERVER}
    vips = 0.0.0.0
    encap = yes
    proposals = aes128-sha256-modp2048
    local {{
      auth = psk
    }}
    local-xauth {{
      auth = xauth
      xauth_id = {user}
    }}
    remote {{
      auth = psk
      id = {SERVER}
    }}
    children {{
      v1 {{
        remote_ts = 10.1.1.0/24
        esp_proposals = aes128-sha256
      }}
    }}
  }}
}}
secrets {{
  eap-me {{
    id = {user}
    secret = "{password}"
  }}
  xauth-me {{
    id = {user}
    secret = "{password}"
  }}
  ike-server {{
    id = {SERVER}
    secret = "{RA_PSK}"
  }}
}}
"#
        );
        std::fs::write(&conf, text).unwrap();
        let out =
            self.charon
                .swanctl(&["--load-all", "--noprompt", "--file", conf.to_str().unwrap()]);
        assert!(out.status.success(), "client config: {out:?}");
    }

    /// `swanctl --initiate` of connection `c` (`v1` or `v2`): Ok(seconds) or charon's words.
    pub fn initiate(&self, c: &str) -> Result<f64, String> {
        let t = Instant::now();
        let out = self
            .charon
            .swanctl(&["--initiate", "--ike", c, "--child", c, "--timeout", "10"]);
        if out.status.success() {
            Ok(t.elapsed().as_secs_f64())
        } else {
            let log = String::from_utf8_lossy(&out.stdout);
            // charon's last words: the EAP or authentication failure.
            let lines: Vec<&str> = log.lines().collect();
            Err(lines[lines.len().saturating_sub(2)..].join(" | "))
        }
    }

    /// The virtual IP charon installed in the namespace.
    pub fn vip(&self) -> Option<String> {
        let out = self.ns.ip(&["-4", "-o", "addr", "show"]);
        out.split_whitespace()
            .find(|w| w.starts_with("10.1.9."))
            .map(|w| w.split('/').next().unwrap_or(w).to_string())
    }

    pub fn established(&self) -> usize {
        String::from_utf8_lossy(&self.charon.swanctl(&["--list-sas"]).stdout)
            .matches("ESTABLISHED")
            .count()
    }
}

/// A CA and a gateway certificate for `SERVER` (SAN IP, EKU serverAuth) made with openssl:
/// (CA path, certificate PEM, key PEM).
pub fn make_certs(dir: &Path) -> (std::path::PathBuf, String, String) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    let ec = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
    run(&[&["genpkey"][..], &ec, &["-out", "ca.key"]].concat());
    run(&[
        "req",
        "-x509",
        "-new",
        "-key",
        "ca.key",
        "-subj",
        "/CN=ravpn test CA",
        "-days",
        "2",
        "-out",
        "ca.pem",
    ]);
    run(&[&["genpkey"][..], &ec, &["-out", "vpn.key"]].concat());
    run(&[
        "req",
        "-new",
        "-key",
        "vpn.key",
        "-subj",
        "/CN=vpn.test",
        "-out",
        "vpn.csr",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        format!("subjectAltName=IP:{SERVER}\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "vpn.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "vpn.pem",
    ]);
    (
        dir.join("ca.pem"),
        std::fs::read_to_string(dir.join("vpn.pem")).unwrap(),
        std::fs::read_to_string(dir.join("vpn.key")).unwrap(),
    )
}
