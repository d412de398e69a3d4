#!/bin/sh
# Run inside the freshly bootstrapped image root (a clean Debian bookworm) by image/build.sh:
# install, remove and purge the package and check what each step leaves, then install it for
# good. Any failed check fails the image build.
#   usage (in the chroot): sh package-lifecycle.sh /tmp/vr-agent_*.deb
set -eu
deb=$1
fail() { echo "package-lifecycle: FAIL: $*" >&2; exit 1; }
step() { echo "package-lifecycle: $*"; }

dpkg -i "$deb" >/dev/null
step "dpkg -i: installed $(dpkg-query -W -f='${Version}' vr-agent)"
[ -x /usr/sbin/vr-agent ] || fail "no /usr/sbin/vr-agent"
[ -f /lib/systemd/system/vr-agent.service ] || fail "no unit"
[ -f /etc/vr-agent/config.toml ] || fail "no config file"
[ "$(stat -c %a /var/lib/vr-agent)" = 700 ] || fail "state dir mode $(stat -c %a /var/lib/vr-agent), want 700"
[ -d /var/cache/vr-agent/spool ] || fail "no spool dir"
[ -L /etc/systemd/system/multi-user.target.wants/vr-agent.service ] || fail "unit not enabled"
/usr/sbin/vr-agent --version >/dev/null || fail "the binary does not run"

# A committed state, as a running agent would leave it.
echo '{"generation":1,"state":{}}' > /var/lib/vr-agent/state.json
chmod 600 /var/lib/vr-agent/state.json
dpkg -r vr-agent >/dev/null
step "dpkg -r: removed"
[ ! -e /usr/sbin/vr-agent ] || fail "binary left after remove"
[ -f /var/lib/vr-agent/state.json ] || fail "remove deleted the state"
[ -f /etc/vr-agent/config.toml ] || fail "remove deleted the conffile"
step "dpkg -r: state and config kept"

dpkg -P vr-agent >/dev/null
[ ! -e /var/lib/vr-agent ] || fail "purge left /var/lib/vr-agent"
[ ! -e /var/cache/vr-agent ] || fail "purge left /var/cache/vr-agent"
[ ! -e /etc/vr-agent/config.toml ] || fail "purge left the config"
step "dpkg -P: state, spool and config gone"

dpkg -i "$deb" >/dev/null
step "dpkg -i: installed again for the image"
