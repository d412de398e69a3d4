#!/bin/sh
# Writes the /opt/cloud/bin front doors listed in image/deb/cloudstack-scripts into DIR, each
# exec'ing BIN (the vr-agent binary) with its verb. Used by image/build-deb.sh (BIN
# /usr/sbin/vr-agent) and by the drop-in test (its built binary).
#   image/cloudstack-scripts.sh DIR BIN
set -eu
dir=$1 bin=$2
list=$(dirname "$0")/deb/cloudstack-scripts
install -d -m 0755 "$dir"
grep -v '^#' "$list" | while read -r script verb; do
  [ -n "$script" ] || continue
  # Nothing but the verb's own output: no `set -x`, no shell messages (stderr is merged into
  # what the management server parses).
  printf '#!/bin/sh\nexec %s cloudstack %s "$@"\n' "$bin" "$verb" > "$dir/$script"
  chmod 0755 "$dir/$script"
done
