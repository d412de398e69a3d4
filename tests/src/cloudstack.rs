//! CloudStack's side of the wire, for the drop-in test: a router namespace running sshd on
//! 3922 with the image's sshd config and the `/opt/cloud/bin` front doors (in a private mount
//! namespace, so `/opt/cloud/bin` and `/var/cache/cloud` are the real paths without touching the
//! host), and a "hypervisor" namespace that reaches it as CloudStack's KVM agent does:
//! `router_proxy.sh` (`ssh -p 3922 root@<control ip> /opt/cloud/bin/<script> <args>`, stdout
//! and stderr merged, the exit status as the verdict) and trilead-ssh2's scp (legacy `scp -t -d
//! <dir>` sink and `scp -f <file>` source modes, spoken here byte for byte).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{wait_for, Netns};

/// The workspace root (image/, examples/).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Writes the front doors of `image/deb/cloudstack-scripts` into `opt/cloud/bin`, exec'ing
/// `bin` (the same script the package build uses).
pub fn install_front_doors(opt: &Path, bin: &Path) {
    let out = Command::new("bash")
        .arg(workspace().join("image/cloudstack-wrappers.sh"))
        .arg(opt.join("cloud/bin"))
        .arg(bin)
        .output()
        .expect("image/cloudstack-wrappers.sh");
    assert!(
        out.status.success(),
        "cloudstack-wrappers.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// sshd in the router namespace. `dir` holds `opt/` (bound over /opt), `varcache/` (bound
/// over /var/cache: `varcache/cloud` is /var/cache/cloud) and the host key; /run is a private
/// tmpfs holding `/run/vr-ssh/listen.conf` as `vr-ssh-listen` writes it in the image. The
/// config is the image's `sshd_config.d/vr-agent.conf`, after the few lines a test needs
/// first (for most keywords the first value wins): its host key, pid file, `authorized_keys`
/// path, and `VR_AGENT_CONFIG` for the sessions (the front doors find the test agent's socket
/// and state through it).
pub fn start_sshd(
    vr: &mut Netns,
    dir: &Path,
    listen: &str,
    authorized_keys: &Path,
    frontdoor_config: &Path,
) {
    let key = dir.join("ssh_host_ed25519_key");
    if !key.exists() {
        keygen(&key, "ed25519");
    }
    let conf = dir.join("sshd_config");
    std::fs::write(
        &conf,
        format!(
            "# drop-in test: what differs from the image, then the image's own file\n\
             HostKey {key}\nPidFile {dir}/sshd.pid\nAuthorizedKeysFile {ak}\n\
             # the test dir is under /tmp (1777): sshd's StrictModes would refuse the key\n\
             StrictModes no\nUsePAM no\nSetEnv VR_AGENT_CONFIG={fd}\n\
             Subsystem sftp /usr/lib/openssh/sftp-server\n\
             Include {image}\n",
            key = key.display(),
            dir = dir.display(),
            ak = authorized_keys.display(),
            fd = frontdoor_config.display(),
            image = workspace()
                .join("image/overlay/etc/ssh/sshd_config.d/vr-agent.conf")
                .display(),
        ),
    )
    .expect("sshd_config");
    let script = format!(
        "set -e; mount --bind '{d}/opt' /opt; mount --bind '{d}/varcache' /var/cache; \
         mount -t tmpfs -o mode=0755 vr-run /run; mkdir -p /run/sshd /run/vr-ssh; \
         echo 'ListenAddress {listen}' > /run/vr-ssh/listen.conf; \
         /usr/sbin/sshd -t -f '{c}'; exec /usr/sbin/sshd -D -e -f '{c}'",
        d = dir.display(),
        c = conf.display()
    );
    let log = std::fs::File::create(dir.join("sshd.log")).expect("sshd.log");
    vr.spawn(
        "unshare",
        &["--mount", "--propagation", "private", "sh", "-c", &script],
        Stdio::null(),
        Stdio::from(log),
    );
    let needle = format!("{listen}:3922");
    assert!(
        wait_for(Duration::from_secs(10), || vr
            .exec_ok("ss", &["-ltnH"])
            .contains(&needle)),
        "sshd does not listen on {needle}: {}",
        std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
    );
}

/// `ssh-keygen -t TYPE` without a passphrase.
pub fn keygen(path: &Path, kind: &str) {
    let mut c = Command::new("ssh-keygen");
    c.args(["-q", "-N", "", "-C", "vr-dropin-test", "-t", kind, "-f"])
        .arg(path);
    if kind == "rsa" {
        c.args(["-b", "2048"]);
    }
    assert!(c.status().expect("ssh-keygen").success());
}

/// The hypervisor: a namespace on the router's control network with the management key.
#[derive(Debug)]
pub struct Hypervisor<'a> {
    pub ns: &'a Netns,
    pub key: PathBuf,
    pub router: String,
}

impl Hypervisor<'_> {
    fn ssh_cmd(&self, extra: &[&str]) -> Command {
        let mut c = self.ns.command("ssh");
        c.args([
            "-F",
            "/dev/null",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "ConnectTimeout=5",
            "-q",
            "-p",
            "3922",
            "-i",
        ])
        .arg(&self.key)
        .args(extra)
        .arg(format!("root@{}", self.router));
        c
    }

    /// `router_proxy.sh <script> <ip> <args>`: the remote command line is
    /// `/opt/cloud/bin/<script> <args>` (one string, re-split by the router's shell). Returns
    /// the exit status and stdout+stderr as the Java sees them; the front doors must write
    /// nothing to stderr, so any stderr fails the test here.
    pub fn run(&self, script: &str, args: &str) -> (i32, String) {
        let line = if args.is_empty() {
            format!("/opt/cloud/bin/{script}")
        } else {
            format!("/opt/cloud/bin/{script} {args}")
        };
        let out = self.ssh_cmd(&[]).arg(&line).output().expect("ssh");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.is_empty(),
            "{line}: wrote to stderr (merged into what the Java parses): {stderr}"
        );
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// trilead-ssh2's `SCPClient.put`: `scp -t -d <dir>` on the router, then `C<mode> <len>
    /// <name>`, the bytes and a NUL, each acknowledged with a 0 byte. Signs with ssh-rsa
    /// (SHA-1), as that client does.
    pub fn scp_put(&self, dir: &str, name: &str, data: &[u8], mode: &str) {
        let mut child = self
            .ssh_cmd(&["-o", "PubkeyAcceptedAlgorithms=ssh-rsa"])
            .arg(format!("scp -t -d {dir}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ssh scp -t");
        let mut input = child.stdin.take().expect("stdin");
        let mut output = child.stdout.take().expect("stdout");
        let ack = |o: &mut dyn Read, what: &str| {
            let mut b = [0u8; 1];
            o.read_exact(&mut b)
                .unwrap_or_else(|e| panic!("scp {what}: {e}"));
            assert_eq!(b[0], 0, "scp {what}: not acknowledged ({})", b[0]);
        };
        ack(&mut output, "start");
        writeln!(input, "C{mode} {} {name}", data.len()).expect("scp header");
        ack(&mut output, "header");
        input.write_all(data).expect("scp data");
        input.write_all(&[0]).expect("scp end");
        ack(&mut output, "data");
        drop(input);
        let out = child.wait_with_output().expect("scp wait");
        assert!(
            out.status.success(),
            "scp -t -d {dir} ({name}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// trilead-ssh2's `SCPClient.get` (`SshHelper.scpFrom`): `scp -f <file>`.
    pub fn scp_get(&self, path: &str) -> Vec<u8> {
        let mut child = self
            .ssh_cmd(&["-o", "PubkeyAcceptedAlgorithms=ssh-rsa"])
            .arg(format!("scp -f {path}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ssh scp -f");
        let mut input = child.stdin.take().expect("stdin");
        let mut output = child.stdout.take().expect("stdout");
        input.write_all(&[0]).expect("scp go");
        let mut header = Vec::new();
        let mut b = [0u8; 1];
        while output.read_exact(&mut b).is_ok() && b[0] != b'\n' {
            header.push(b[0]);
        }
        let header = String::from_utf8_lossy(&header).into_owned();
        assert!(header.starts_with('C'), "scp -f {path}: {header:?}");
        let len: usize = header
            .split(' ')
            .nth(1)
            .and_then(|l| l.parse().ok())
            .unwrap_or_else(|| panic!("scp -f header {header:?}"));
        input.write_all(&[0]).expect("scp ack");
        let mut data = vec![0u8; len];
        output.read_exact(&mut data).expect("scp data");
        output.read_exact(&mut b).expect("scp end");
        assert_eq!(b[0], 0);
        input.write_all(&[0]).expect("scp ack");
        drop(input);
        let out = child.wait_with_output().expect("scp wait");
        assert!(out.status.success(), "scp -f {path}");
        data
    }
}
