#!/usr/bin/env bash
# Boots the system-VM image twice under qemu (software emulation) and reads the serial console:
#  1. with a seed disk holding examples/image/push.json plus a control NIC (eth1, 169.254.3.7/16),
#     and CloudStack's boot cmdline (control address, root's key) written through the QEMU
#     guest agent; over SSH /opt/cloud/bin/get_template_version.sh answers the release line
#     the Java parses and checkrouter.sh `Status: PRIMARY`;
#     the agent applies it, and the console shows the push result, the port forward in
#     `nft list table ip vr` and the listening sockets, which must be exactly the named ones
#     (sshd on the control address). Then the locked image is checked from outside:
#     - on the serial console, root with an empty and with a wrong password: "Login incorrect";
#     - over SSH on the control address (port 3922, forwarded from 127.0.0.1): root by key works
#       (also with the ssh-rsa SHA-1 signatures CloudStack's trilead client makes, and legacy
#       scp), the server offers no method but publickey, `su` is refused, every account's
#       password is locked, and `ss` inside agrees with the console; the test then powers the
#       router off over SSH;
#  2. without the seed disk, after the reboot: the console shows the same table, replayed from
#     the stored state before any push arrived, and the same listeners.
#
#   image/boot-test.sh [IMAGE_DIR]     # default target/image (run image/build.sh first)
set -euo pipefail
cd "$(dirname "$0")/.."
img=$(realpath "${1:-target/image}")
[ -f "$img/vr-router.qcow2" ] || { echo "no image in $img: run image/build.sh" >&2; exit 2; }
# shellcheck source=image/host-tools.sh
. image/host-tools.sh
host_qemu
host_packages openssh-client e2fsprogs python3
work=$(mktemp -d /var/tmp/vr-boot.XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# The control address the seed push gives eth1, and the only listeners the design names for a
# router without guest networks or VPN: sshd on the control address, and charon's IKE sockets
# (IPv4 only; see image/overlay/etc/strongswan.d/vr-agent.conf). charon is a system daemon that
# binds IKE on every address as soon as it runs; the agent's firewall admits IKE only from
# configured VPN peers. (The agent's metrics on the control address join this list when they
# land; DNS/DHCP/metadata only on guest NICs.)
control=169.254.3.7
named_listeners="tcp $control:3922;udp 0.0.0.0:500;udp 0.0.0.0:4500"

# A key for root, delivered the way CloudStack delivers its own at every start: base64 in the
# boot cmdline's authorized_key, written into /var/cache/cloud/cmdline through the QEMU guest
# agent (image/qga-cmdline.py, as CloudStack's patch.sh does with virsh qemu-agent-command).
# The agent installs it for root. RSA, like CloudStack's id_rsa.cloud.
ssh-keygen -q -t rsa -b 3072 -N '' -C vr-boot-test -f "$work/id_rsa"
cmdline="template=domP name=r-9-VM type=router eth1ip=$control eth1mask=255.255.0.0 authorized_key=$(base64 -w0 "$work/id_rsa.pub")"
qemu-img convert -O raw "$img/vr-router.qcow2" "$work/base.raw"
# A throw-away disk on top of that copy: both boots share it, the image stays pristine.
qemu-img create -q -f qcow2 -b "$work/base.raw" -F raw "$work/disk.qcow2"

mkdir "$work/seed"
python3 - examples/image/push.json "$work/seed/push.json" "$control" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
doc["interfaces"].append({"device": "eth1", "role": "control", "addresses": [sys.argv[3] + "/16"]})
json.dump(doc, open(sys.argv[2], "w"), indent=1)
EOF
mkfs.ext4 -q -L VRSEED -d "$work/seed" "$work/seed.img" 8M

# SSH reaches the control address through a forward of qemu's user network from a free port on
# 127.0.0.1. Both user networks are restricted: the guest reaches nothing outside.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# Software emulation by default: it works everywhere (nested KVM on these build machines
# starts the guest but never gets its kernel going). VR_QEMU_ACCEL=kvm where KVM is real.
accel=${VR_QEMU_ACCEL:-tcg}
qemu=()
set_qemu() { # set_qemu SERIAL CMDLINE_EXTRA [extra qemu args...]: the command line in ${qemu[@]}
  local serial=$1 extra=$2; shift 2
  qemu=(timeout 900 qemu-system-x86_64 -machine "q35,accel=$accel" -m 1024 -smp 2 -nographic
    -drive "file=$work/disk.qcow2,if=virtio" "$@"
    -netdev user,id=n0,restrict=on -device virtio-net-pci,netdev=n0
    -netdev "user,id=n1,restrict=on,net=169.254.0.0/16,host=169.254.0.2,hostfwd=tcp:127.0.0.1:$port-$control:3922"
    -device virtio-net-pci,netdev=n1
    -kernel "$img/vmlinuz" -initrd "$img/initrd.img"
    -append "root=/dev/vda rw console=ttyS0 net.ifnames=0 $extra"
    -serial "$serial" -monitor none)
}
# Checks use `grep -q PATTERN <<<"$text"`, never `echo "$text" | grep -q`: under pipefail, grep
# leaving early makes echo die of SIGPIPE and a match reads as a miss.
section() { sed -n '/==== VR-CONSOLE BEGIN/,/==== VR-CONSOLE END/p' "$1" | tr -d '\r'; }
# On a failure while boot 1 runs, what the router says about itself over SSH (the console takes
# no password), then the end of the console.
fail() {
  echo "boot-test: FAIL: $*" >&2
  if [ -n "${qpid:-}" ] && kill -0 "$qpid" 2>/dev/null; then
    echo "boot-test: the router's own view (over SSH, if it answers):" >&2
    timeout 120 ssh "${ssh_opts[@]}" -o IdentitiesOnly=yes -i "$work/id_rsa" root@127.0.0.1 \
      'systemctl --failed --no-pager; systemctl list-jobs --no-pager; ss -ltnup;
       journalctl -b --no-pager -o short-monotonic -u ssh -u vr-ssh-listen -u vr-agent-console -u vr-agent-seed -u frr | tail -80' >&2 \
      || echo "boot-test: (no SSH)" >&2
    echo "boot-test: console, last 40 lines:" >&2
    tail -40 "$log1" | tr -d '\r' >&2
  fi
  exit 1
}

# check_listeners NAME TEXT: the "listen NETID ADDR:PORT ..." lines of TEXT are exactly the
# named listeners.
check_listeners() {
  local have
  have=$(echo "$2" | awk '$1 == "listen" { print $2, $3 }' | sort -u)
  [ "$have" = "$(echo "$named_listeners" | tr ';' '\n' | sort -u)" ] \
    || fail "$1: listeners are [$(echo "$have" | tr '\n' ';')], the design names only [$named_listeners]"
  echo "boot-test: $1: listeners exactly the named ones: $(echo "$have" | tr '\n' ';')"
}

# ---- serial console driving for boot 1 (qemu's pipe chardev: ser.in to the guest, ser.out from it)
log1=$work/boot1.log
qpid=
since() { tail -c +$(($1 + 1)) "$log1" | tr -d '\r'; }
wait_for() { # wait_for OFFSET REGEX SECONDS: REGEX in the console output after byte OFFSET
  local end=$(($(date +%s) + $3))
  while [ "$(date +%s)" -lt "$end" ]; do
    grep -qE "$2" <<<"$(since "$1")" && return 0
    kill -0 "$qpid" 2>/dev/null || return 1
    sleep 0.5
  done
  return 1
}
type_line() { timeout 10 sh -c 'printf "%s\r" "$1" > "$2"' _ "$1" "$work/ser.in"; }
size() { stat -c %s "$log1"; }

# login_refused LABEL PASSWORD: root with PASSWORD on the serial console must get "Login
# incorrect" (pam_faildelay makes that take a few seconds).
login_refused() {
  local off
  off=$(size)
  type_line ""
  wait_for "$off" 'login: *$' 60 || fail "no login prompt on the serial console"
  off=$(size)
  type_line root
  wait_for "$off" 'Password:|root@vr-router|# *$' 60 || fail "no answer to 'root' on the console"
  if ! grep -q 'Password:' <<<"$(since "$off")"; then
    since "$off" >&2
    fail "root logged in on the serial console without being asked for a password"
  fi
  off=$(size)
  type_line "$2"
  wait_for "$off" 'Login incorrect|root@vr-router|Last login|# *$' 60 \
    || fail "no answer to the $1 password on the console"
  grep -q 'Login incorrect' <<<"$(since "$off")" || { since "$off" >&2; fail "root logged in on the serial console with the $1 password"; }
  echo "boot-test: serial console: root with the $1 password: $(since "$off" | grep -o 'Login incorrect' | head -1)"
}

ssh_opts=(-F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes
          -o ConnectTimeout=20 -o LogLevel=ERROR -p "$port")
vssh() { ssh "${ssh_opts[@]}" -o IdentitiesOnly=yes -i "$work/id_rsa" "$@"; }

t0=$(date +%s)
echo "boot-test: boot 1 (seed disk with a push and a control NIC), accel=$accel"
mkfifo "$work/ser.in" "$work/ser.out"
cat "$work/ser.out" > "$log1" &
pids+=($!)
set_qemu "pipe:$work/ser" "" -drive "file=$work/seed.img,if=virtio,format=raw" \
  -chardev "socket,id=qga0,path=$work/qga.sock,server=on,wait=off" \
  -device virtio-serial -device virtserialport,chardev=qga0,name=org.qemu.guest_agent.0
"${qemu[@]}" </dev/null >/dev/null &
qpid=$!
pids+=("$qpid")
# The boot cmdline through the guest agent: guest-ping until it answers, guest-sync, then
# guest-file-open/write/close of /var/cache/cloud/cmdline.
python3 image/qga-cmdline.py "$work/qga.sock" "$cmdline" 600 > "$work/qga.log" 2>&1 &
qga=$!
pids+=("$qga")
wait_for 0 '==== VR-CONSOLE END' 600 || fail "boot 1 did not reach the console summary"
wait "$qga" || { cat "$work/qga.log" >&2; fail "the cmdline was not delivered through the guest agent"; }
sed 's/^/boot-test: /' "$work/qga.log"
s1=$(section "$log1")
echo "$s1"
grep -q 'push result push.json.result.json: .*"ok": *true' <<<"$s1" || fail "the push was not applied"
grep -qE '192.0.2.10 . (tcp|6) . 8080 : 10.1.1.10 . 80' <<<"$s1" || fail "no port forward after the push"
check_listeners "boot 1 console" "$s1"

login_refused empty ""
login_refused wrong "not-the-password"

echo "boot-test: SSH to root@$control:3922 (forwarded from 127.0.0.1:$port)"
out=$(vssh -o PubkeyAcceptedAlgorithms=ssh-rsa root@127.0.0.1 'id -un') \
  || fail "root could not log in by key with an ssh-rsa (SHA-1) signature"
[ "$out" = root ] || fail "ssh id -un: $out"
echo "boot-test: ssh: root by RSA key (from the cmdline's authorized_key) with ssh-rsa (SHA-1) signatures: ok"
# GetDomRVersionCmd, parsed by the Java's rule (VirtualRoutingResource.execute(GetDomRVersionCmd)
# and CloudStackVersion.trimRouterVersion): exactly one '&', word 3 of the first part x.y.z.
out=$(vssh root@127.0.0.1 /opt/cloud/bin/get_template_version.sh 2>&1) || fail "get_template_version.sh failed"
[ "$(grep -o '&' <<<"$out" | wc -l)" = 1 ] || fail "get_template_version.sh: want exactly one '&': $out"
ver=$(cut -d'&' -f1 <<<"$out" | cut -d' ' -f3)
grep -qE '^([0-9]+\.){2}([0-9]+\.)?[0-9]+$' <<<"$ver" || fail "get_template_version.sh: version '$ver' in: $out"
grep -qE '&[0-9a-f]{128}$' <<<"$out" || fail "get_template_version.sh: no sha512 after '&': $out"
echo "boot-test: get_template_version.sh over SSH: $out (version $ver)"
out=$(vssh root@127.0.0.1 /opt/cloud/bin/checkrouter.sh 2>&1) || fail "checkrouter.sh failed"
[ "$out" = "Status: PRIMARY" ] || fail "checkrouter.sh: $out"
echo "boot-test: checkrouter.sh over SSH: $out"
out=$(vssh root@127.0.0.1 'sshd -T | grep -E "^(listenaddress|port|passwordauthentication|kbdinteractiveauthentication|permitrootlogin|authenticationmethods) "') \
  || fail "ssh sshd -T"
echo "$out" | sed 's/^/boot-test: sshd -T: /'
set +e
out=$(ssh "${ssh_opts[@]}" -o PubkeyAuthentication=no -o PreferredAuthentications=password,keyboard-interactive \
  root@127.0.0.1 true 2>&1)
rc=$?
set -e
[ $rc = 255 ] && grep -q 'Permission denied (publickey)' <<<"$out" \
  || fail "ssh without a key: rc=$rc '$out' (want 'Permission denied (publickey)': no other method offered)"
echo "boot-test: ssh without a key: $(echo "$out" | tail -1) (the server offers publickey only)"
head -c 65536 /dev/urandom > "$work/payload"
scp -O -q -P "$port" "${ssh_opts[@]:0:${#ssh_opts[@]}-2}" -o IdentitiesOnly=yes -i "$work/id_rsa" "$work/payload" root@127.0.0.1:/root/payload \
  || fail "legacy scp (scp -O) to the router"
[ "$(vssh root@127.0.0.1 'sha256sum /root/payload; rm /root/payload' | cut -d' ' -f1)" = "$(sha256sum "$work/payload" | cut -d' ' -f1)" ] \
  || fail "legacy scp: the copy differs"
echo "boot-test: legacy scp (scp -O) of 64 KiB: identical"
inside=$(vssh root@127.0.0.1 'ss -H -ltnup | awk "{ print \"listen\", \$1, \$5, \$7 }"') || fail "ssh ss"
check_listeners "boot 1 over ssh" "$inside"
out=$(vssh root@127.0.0.1 'passwd -S root | cut -d" " -f2; awk -F: "\$2 !~ /^[!*]/ { print \$1 }" /etc/shadow; awk -F: "\$2 != \"x\" { print \$1 }" /etc/passwd')
[ "$out" = L ] || fail "passwords inside: want root locked and no other usable password, have: $(echo "$out" | tr '\n' ' ')"
echo "boot-test: passwords inside: root locked (passwd -S: L), no account with a usable or empty password"
if vssh root@127.0.0.1 'setpriv --reuid=65534 --regid=65534 --clear-groups su -c true root </dev/null' 2>/dev/null; then
  fail "su to root from nobody succeeded without a password"
fi
echo "boot-test: su to root from an ordinary user: refused"
# (systemctl first asks logind over D-Bus, which the image does not run, and says so.)
vssh root@127.0.0.1 'systemctl --no-block poweroff 2>/dev/null' || true
for _ in $(seq 240); do kill -0 "$qpid" 2>/dev/null || break; sleep 0.5; done
if kill -0 "$qpid" 2>/dev/null; then fail "boot 1 did not power off"; fi
wait "$qpid" || true

echo "boot-test: boot 2 (no seed disk): the state must come back by replay"
set_qemu "file:$work/boot2.log" vr.poweroff
"${qemu[@]}" </dev/null >/dev/null
s2=$(section "$work/boot2.log")
echo "$s2"
grep -qE '192.0.2.10 . (tcp|6) . 8080 : 10.1.1.10 . 80' <<<"$s2" || fail "the port forward was not replayed"
grep -q 'replay: ok' <<<"$s2" || fail "no successful replay in status"
if grep -q 'last push:' <<<"$s2"; then fail "boot 2 received a push; the test proves nothing"; fi
grep -q '192.0.2.10/24' <<<"$s2" || fail "the address was not replayed"
check_listeners "boot 2 console" "$s2"
echo "boot-test: PASS (two boots in $(( $(date +%s) - t0 )) s)"
