#!/usr/bin/env bash
# Writes the /opt/cloud/bin front doors listed in image/deb/cloudstack-scripts into DIR, each
# a two-line script exec'ing `<vr-agent> cloudstack <verb> "$@"` (one implementation: the
# binary). Used by build-deb.sh and by the tests (with the test binary).
# Usage: image/cloudstack-wrappers.sh DIR [VR_AGENT_PATH]   (default /usr/sbin/vr-agent)
set -euo pipefail
dir=$1
bin=${2:-/usr/sbin/vr-agent}
list="$(dirname "$0")/deb/cloudstack-scripts"
install -d -m 0755 "$dir"
while read -r script verb; do
  case "$script" in ''|'#'*) continue ;; esac
  printf '#!/bin/sh\nexec %s cloudstack %s "$@"\n' "$bin" "$verb" > "$dir/$script"
  chmod 0755 "$dir/$script"
done < "$list"
