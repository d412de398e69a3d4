#!/bin/sh
# Run inside the image root by image/build.sh, after the overlay and before the host keys are
# removed: checks that the image is locked. Any failed check fails the image build.
#   usage (in the chroot): sh lock-check.sh
# What it checks: no account has a usable password (root's is locked), `su` from an ordinary
# user is refused, sshd's effective configuration is key-only on 3922 with the algorithms
# CloudStack needs and listens only where /run/vr-ssh/listen.conf says, ssh.service does not
# start without that file, and FRR opens no TCP vty port.
set -eu
fail() { echo "lock-check: FAIL: $*" >&2; exit 1; }
step() { echo "lock-check: $*"; }

# Passwords: the hash lives in shadow only, and every hash there is locked ('!') or impossible
# ('*'): no empty password, no real hash.
bad=$(awk -F: '$2 != "x" { print $1 }' /etc/passwd)
[ -z "$bad" ] || fail "accounts with a password field in /etc/passwd: $bad"
bad=$(awk -F: '$2 !~ /^[!*]/ { print $1 }' /etc/shadow)
[ -z "$bad" ] || fail "accounts with a usable or empty password: $bad"
case $(awk -F: '$1 == "root" { print $2 }' /etc/shadow) in
  '!'*) ;;
  *) fail "root's password is not locked" ;;
esac
[ "$(passwd -S root | cut -d' ' -f2)" = L ] || fail "passwd -S root: $(passwd -S root)"
step "passwords: $(wc -l < /etc/shadow) accounts, all locked or impossible; root locked"

# su from an ordinary user with no password to give (an empty password was enough before).
if setpriv --reuid=65534 --regid=65534 --clear-groups su -c true root </dev/null >/dev/null 2>&1; then
  fail "su to root succeeded without a password"
fi
step "su: refused without a password"

# sshd: the effective configuration, with a control address as vr-ssh-listen writes it.
mkdir -p /run/sshd /run/vr-ssh
echo "ListenAddress 169.254.3.7" > /run/vr-ssh/listen.conf
/usr/sbin/sshd -t || fail "sshd -t refuses the configuration"
t=$(/usr/sbin/sshd -T)
rm -rf /run/vr-ssh /run/sshd
want() { # want "keyword value": that exact line in sshd -T
  echo "$t" | grep -qx "$1" || fail "sshd -T: want '$1', have '$(echo "$t" | grep "^${1%% *} " | tr '\n' ' ')'"
}
want "port 3922"
want "addressfamily inet"
want "listenaddress 169.254.3.7:3922"
[ "$(echo "$t" | grep -c '^listenaddress ')" = 1 ] || fail "sshd -T: more than one listenaddress"
want "permitrootlogin without-password"
want "pubkeyauthentication yes"
want "authenticationmethods publickey"
want "passwordauthentication no"
want "kbdinteractiveauthentication no"
want "permitemptypasswords no"
want "x11forwarding no"
want "allowtcpforwarding no"
echo "$t" | grep '^pubkeyacceptedalgorithms ' | tr ',' '\n' | grep -qx 'ssh-rsa' \
  || fail "sshd -T: ssh-rsa signatures are not accepted (trilead-ssh2 needs them)"
echo "$t" | grep -q '^subsystem sftp ' || fail "sshd -T: no sftp subsystem"
command -v scp >/dev/null || fail "no scp (legacy scp -t/-f is how CloudStack copies files)"
grep -qx 'ConditionPathExists=/run/vr-ssh/listen.conf' /etc/systemd/system/ssh.service.d/vr-control-only.conf \
  || fail "ssh.service would start without a control address"
[ -L /etc/systemd/system/multi-user.target.wants/vr-ssh-listen.service ] || fail "vr-ssh-listen.service not enabled"
step "sshd: port 3922, keys only, root by key only, ssh-rsa accepted, listens on the control address only"

# Each daemon's own options (not frr_global_options: watchfrr gets those too and knows no -P).
bad=$(grep -E '^[a-z0-9]+_options=' /etc/frr/daemons | grep -v -- '-P 0"$' || true)
[ -z "$bad" ] || fail "FRR daemons that would open a TCP vty port: $bad"
grep -q '^zebra_options=.*-P 0"$' /etc/frr/daemons || fail "no zebra_options in /etc/frr/daemons"
# The agent drives OSPF through ospfd; Debian ships it disabled.
grep -q '^ospfd=yes' /etc/frr/daemons || fail "ospfd is not enabled in /etc/frr/daemons"
# BGP too (bgppeers): bgpd runs from boot, so a BGP push never needs an FRR restart.
grep -q '^bgpd=yes' /etc/frr/daemons || fail "bgpd is not enabled in /etc/frr/daemons"
step "frr: ospfd and bgpd enabled, no TCP vty port (vtysh and the agent use the Unix sockets)"

grep -q 'use_ipv6 = no' /etc/strongswan.d/vr-agent.conf || fail "charon would open IPv6 IKE sockets"
step "charon: IKE on IPv4 only, no DHCP plugin socket"

# CloudStack: the front doors exec the agent, the guest agent is there to receive the cmdline.
for s in update_config.py vr_cfg.sh checkrouter.sh get_template_version.sh; do
  [ -x /opt/cloud/bin/$s ] || fail "no /opt/cloud/bin/$s"
done
grep -q '^exec /usr/sbin/vr-agent cloudstack ' /opt/cloud/bin/update_config.py \
  || fail "/opt/cloud/bin/update_config.py does not exec vr-agent"
[ -x /usr/sbin/qemu-ga ] || fail "no qemu-guest-agent (CloudStack writes the boot cmdline through it)"
ga=$(/usr/sbin/qemu-ga -D 2>&1 | sed -n 's/^block-rpcs=//p')
for r in guest-exec guest-set-user-password guest-ssh-add-authorized-keys; do
  echo ",$ga," | grep -q ",$r," || fail "qemu-ga allows $r (have block-rpcs=$ga)"
done
for r in guest-ping guest-sync guest-file-open guest-file-write guest-file-close; do
  echo ",$ga," | grep -q ",$r," && fail "qemu-ga blocks $r, which CloudStack needs"
done
[ -d /var/cache/cloud ] && [ "$(stat -c %a /root/.ssh)" = 700 ] || fail "no /var/cache/cloud or /root/.ssh 0700"
step "cloudstack: /opt/cloud/bin front doors, qemu-guest-agent (file RPCs, no exec), /var/cache/cloud"
