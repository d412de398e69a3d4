//! Real daemons inside a test's namespaces: strongSwan charon (kernel-libipsec, private /run,
//! own VICI socket) and FRR zebra + ospfd (private run dirs, own vty socket directory).
//! See `shared/recipes/{ipsec,ospf}.sh` for the facts these follow.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{wait_for, Netns};

pub const CHARON: &str = "/usr/lib/ipsec/charon";
pub const ZEBRA: &str = "/usr/lib/frr/zebra";
pub const OSPFD: &str = "/usr/lib/frr/ospfd";
pub const BGPD: &str = "/usr/lib/frr/bgpd";

/// A charon running in a namespace. Killed with the namespace's other children.
#[derive(Debug)]
pub struct Charon {
    pub dir: PathBuf,
    pub vici_socket: PathBuf,
    pub conf: PathBuf,
    pub pid: u32,
}

impl Charon {
    /// Writes a private strongswan.conf under `dir` and starts charon in `ns`.
    pub fn start(ns: &mut Netns, dir: &Path) -> Charon {
        std::fs::create_dir_all(dir.join("run")).expect("charon dir");
        let vici = dir.join("charon.vici");
        let conf = dir.join("strongswan.conf");
        // One `key = value` per line: strongswan.conf has no `;` separator. kernel-libipsec
        // because this kernel has no ESP; explicit load list so no host config is read.
        // eap-identity, eap-mschapv2 (MD4: OpenSSL 3's legacy provider) and xauth-generic
        // serve remote-access users.
        let text = format!(
            "charon {{\n  load_modular = no\n  load = random nonce aes sha1 sha2 hmac gmp curve25519 gcm openssl kdf pem pkcs1 pkcs8 x509 pubkey revocation constraints kernel-libipsec kernel-netlink socket-default vici eap-identity eap-mschapv2 xauth-generic\n  install_routes = yes\n  retransmit_tries = 3\n  filelog {{\n    main {{\n      path = {log}\n      time_format = %H:%M:%S\n      default = 1\n      append = no\n      flush_line = yes\n    }}\n  }}\n  syslog {{\n    daemon {{\n      default = -1\n    }}\n  }}\n  plugins {{\n    vici {{\n      socket = unix://{vici}\n    }}\n    openssl {{\n      load_legacy = yes\n    }}\n  }}\n}}\n",
            log = dir.join("charon.log").display(),
            vici = vici.display()
        );
        std::fs::write(&conf, text).expect("strongswan.conf");
        let _ = std::fs::remove_file(&vici);
        // A charon killed by a test is a zombie until the namespace handle reaps it, so the
        // PID in its pid file still exists and a new charon would refuse to start.
        let _ = std::fs::remove_file(dir.join("run/charon.pid"));
        let stderr = std::fs::File::create(dir.join("charon.stderr")).expect("stderr file");
        // `ip netns exec` gives the command its own mount namespace: a private /run keeps the
        // hard-coded /var/run/charon.pid from clashing between instances and with the host.
        let script = format!(
            "mount --bind '{}' /run && STRONGSWAN_CONF='{}' exec {CHARON}",
            dir.join("run").display(),
            conf.display()
        );
        let pid = ns.spawn("sh", &["-c", &script], Stdio::null(), Stdio::from(stderr));
        assert!(
            wait_for(Duration::from_secs(10), || vici.exists()),
            "charon did not open {}; see {}",
            vici.display(),
            dir.join("charon.log").display()
        );
        Charon {
            dir: dir.to_path_buf(),
            vici_socket: vici,
            conf,
            pid,
        }
    }

    /// `swanctl ARGS --uri unix://VICI` (works from any namespace: the socket is a path).
    pub fn swanctl(&self, args: &[&str]) -> std::process::Output {
        Command::new("swanctl")
            .args(args)
            .arg("--uri")
            .arg(format!("unix://{}", self.vici_socket.display()))
            .env("STRONGSWAN_CONF", &self.conf)
            .output()
            .expect("swanctl")
    }
}

/// zebra + ospfd running in a namespace with their own vty socket directory.
#[derive(Debug)]
pub struct Frr {
    pub dir: PathBuf,
}

impl Frr {
    /// Starts zebra, waits until it answers, then ospfd with `ospfd_conf` (FRR syntax;
    /// empty = configured later through vtysh).
    pub fn start(ns: &mut Netns, dir: &Path, hostname: &str, ospfd_conf: &str) -> Frr {
        for d in [dir.to_path_buf(), dir.join("state"), dir.join("crash")] {
            std::fs::create_dir_all(&d).expect("frr dir");
        }
        // ospfd and zebra drop to user frr: every directory on the way must be traversable.
        let mut p = dir.to_path_buf();
        loop {
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755));
            if !p.pop() || p.as_os_str().is_empty() || p == Path::new("/") || p == Path::new("/tmp")
            {
                break;
            }
        }
        std::fs::write(dir.join("zebra.conf"), format!("hostname {hostname}\n"))
            .expect("zebra.conf");
        std::fs::write(
            dir.join("ospfd.conf"),
            format!("hostname {hostname}\n{ospfd_conf}"),
        )
        .expect("ospfd.conf");
        let _ = Command::new("chown")
            .args(["-R", "frr:frr"])
            .arg(dir)
            .status();
        let frr = Frr {
            dir: dir.to_path_buf(),
        };
        frr.start_daemon(ns, "zebra");
        frr.start_daemon(ns, "ospfd");
        frr
    }

    /// Starts bgpd beside zebra with `bgpd_conf` (FRR syntax; empty = configured later).
    pub fn add_bgpd(&self, ns: &mut Netns, bgpd_conf: &str) {
        std::fs::write(self.dir.join("bgpd.conf"), bgpd_conf).expect("bgpd.conf");
        let _ = Command::new("chown")
            .arg("frr:frr")
            .arg(self.dir.join("bgpd.conf"))
            .status();
        self.start_daemon(ns, "bgpd");
    }

    fn start_daemon(&self, ns: &mut Netns, daemon: &str) {
        let d = &self.dir;
        let script = format!(
            "mount --bind '{state}' /var/run/frr && mount --bind '{crash}' /var/tmp/frr && exec /usr/lib/frr/{daemon} -f '{d}/{daemon}.conf' -i '{d}/{daemon}.pid' -z '{d}/zserv.api' --vty_socket '{d}' -P 0 --log 'file:{d}/{daemon}.log'",
            state = d.join("state").display(),
            crash = d.join("crash").display(),
            d = d.display(),
        );
        std::fs::create_dir_all("/var/run/frr").ok();
        std::fs::create_dir_all("/var/tmp/frr").ok();
        let out = std::fs::File::create(d.join(format!("{daemon}.stdout"))).expect("stdout file");
        ns.spawn(
            "sh",
            &["-c", &script],
            Stdio::from(out.try_clone().expect("dup")),
            Stdio::from(out),
        );
        // ospfd started before zebra answers waits 10 s to retry its zserv connection.
        let ok = wait_for(Duration::from_secs(15), || {
            self.vtysh_daemon(daemon, &["show version"])
                .status
                .success()
        });
        assert!(
            ok,
            "{daemon} did not come up; see {}/{daemon}.log",
            d.display()
        );
    }

    fn vtysh_daemon(&self, daemon: &str, cmds: &[&str]) -> std::process::Output {
        let mut c = Command::new("vtysh");
        c.arg("--vty_socket").arg(&self.dir).args(["-d", daemon]);
        for cmd in cmds {
            c.args(["-c", cmd]);
        }
        c.output().expect("vtysh")
    }

    /// `vtysh --vty_socket DIR -c CMD...`: stdout.
    pub fn vtysh(&self, cmds: &[&str]) -> String {
        let mut c = Command::new("vtysh");
        c.arg("--vty_socket").arg(&self.dir);
        for cmd in cmds {
            c.args(["-c", cmd]);
        }
        String::from_utf8_lossy(&c.output().expect("vtysh").stdout).into_owned()
    }
}
