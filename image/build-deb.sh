#!/usr/bin/env bash
# Builds the Debian package vr-agent_<version>_<arch>.deb from the workspace into target/deb/.
# Usage: image/build-deb.sh [--debug | --bin PATH]   (release build by default; --bin packages
# an already built binary, as the tests do)
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  --debug) cargo build -p vr-agent --bin vr-agent; bin=target/debug/vr-agent ;;
  --bin) bin=$2 ;;
  *) cargo build --release -p vr-agent --bin vr-agent; bin=target/release/vr-agent ;;
esac
version=$(cargo metadata --no-deps --format-version 1 | python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"]=="vr-agent"))')
arch=$(dpkg --print-architecture)
out=target/deb
stage=$out/stage
rm -rf "$stage"; mkdir -p "$stage/DEBIAN"
install -D -m 0755 "$bin" "$stage/usr/sbin/vr-agent"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$stage/usr/sbin/vr-agent"
install -D -m 0644 systemd/vr-agent.service "$stage/lib/systemd/system/vr-agent.service"
install -D -m 0644 systemd/vr-agent-modules.conf "$stage/usr/lib/modules-load.d/vr-agent.conf"
install -D -m 0644 image/deb/config.toml "$stage/etc/vr-agent/config.toml"
image/cloudstack-wrappers.sh "$stage/opt/cloud/bin" /usr/sbin/vr-agent
install -D -m 0644 image/deb/lintian-overrides "$stage/usr/share/lintian/overrides/vr-agent"
install -d -m 0755 "$stage/usr/share/man/man8" "$stage/usr/share/bash-completion/completions" "$stage/usr/share/doc/vr-agent"
"$bin" generate man | gzip -9n > "$stage/usr/share/man/man8/vr-agent.8.gz"
"$bin" generate bash > "$stage/usr/share/bash-completion/completions/vr-agent"
install -m 0644 image/deb/copyright "$stage/usr/share/doc/vr-agent/copyright"
printf 'vr-agent (%s) unstable; urgency=medium\n\n  * Build from the vr-agent workspace.\n\n -- vr-agent developers <vr-agent@example.org>  %s\n' \
  "$version" "$(date -R -d @"${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")" \
  | gzip -9n > "$stage/usr/share/doc/vr-agent/changelog.gz"
for s in postinst prerm postrm; do install -m 0755 "image/deb/$s" "$stage/DEBIAN/$s"; done
install -m 0644 image/deb/conffiles "$stage/DEBIAN/conffiles"
# Shared-library dependencies as dpkg-shlibdeps computes them.
tmp=$(mktemp -d); mkdir -p "$tmp/debian"; printf 'Source: vr-agent\n\nPackage: vr-agent\nArchitecture: any\n' > "$tmp/debian/control"
shlibs=$(cd "$tmp" && dpkg-shlibdeps -O "$OLDPWD/$stage/usr/sbin/vr-agent" 2>/dev/null | sed -n 's/^shlibs:Depends=//p'); rm -rf "$tmp"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SHLIBS@/$shlibs/" -e "s/@SIZE@/$size/" image/deb/control.in > "$stage/DEBIAN/control"
(cd "$stage" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum > DEBIAN/md5sums)
chmod 0644 "$stage/DEBIAN/md5sums"
deb=$out/vr-agent_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
