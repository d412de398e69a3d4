# Sourced by image/build.sh and image/boot-test.sh: installs the host tools they need.
#
# qemu-utils (qemu-img) and qemu-system-x86 must come from one QEMU release: a machine that
# ships a newer qemu-utils (a backport) than its archive's qemu-system-x86 cannot have both,
# since that qemu-utils Breaks the older qemu-system-common, and a plain
# `apt-get install qemu-system-x86` then removes qemu-utils (and qemu-img with it). Both are
# therefore installed together, pinned to the version of qemu-system-x86 (the installed one, or
# the archive's candidate), downgrading qemu-utils if it has to.

host_packages() { # host_packages PKG...: installs those of PKG... that are missing
  local need=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
  done
  [ ${#need[@]} -eq 0 ] && return 0
  echo "host-tools: installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

host_qemu() { # qemu-img and qemu-system-x86_64 of one release
  if command -v qemu-img >/dev/null && command -v qemu-system-x86_64 >/dev/null; then
    return 0
  fi
  local v
  v=$(dpkg-query -W -f='${Status} ${Version}' qemu-system-x86 2>/dev/null \
    | sed -n 's/^install ok installed //p' || true)
  [ -n "$v" ] || v=$(apt-cache policy qemu-system-x86 | sed -n 's/^ *Candidate: *//p')
  if [ -z "$v" ] || [ "$v" = "(none)" ]; then
    echo "host-tools: apt knows no qemu-system-x86 (run apt-get update)" >&2
    return 1
  fi
  echo "host-tools: installing qemu-system-x86 and qemu-utils $v"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --allow-downgrades \
    "qemu-system-x86=$v" "qemu-utils=$v" >/dev/null
  command -v qemu-img >/dev/null && command -v qemu-system-x86_64 >/dev/null
}
