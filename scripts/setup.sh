#!/usr/bin/env bash
# Installs everything vr-agent needs to build, run its demo and run its tests on a fresh
# Debian 12 machine (as root). Idempotent: skips what is already there.
set -euo pipefail

PACKAGES=(
  # build of nftnl (libnftnl 1.2.4 in Debian 12)
  pkg-config libnftnl-dev libmnl-dev
  # the kernel-facing tools the tests and diagnostics use
  iproute2 nftables conntrack iptables iputils-ping iputils-arping traceroute python3 procps
  # strongSwan charon with VICI and kernel-libipsec (no kernel ESP on these machines)
  strongswan-charon strongswan-swanctl libcharon-extra-plugins
  libstrongswan-standard-plugins libstrongswan-extra-plugins
  # remote-access users: eap-mschapv2 and xauth-generic; openssl makes the test's gateway certificate
  libcharon-extauth-plugins openssl
  # FRR for OSPF
  frr
  # guest DHCP and DNS: the agent's dnsmasq, dhcp_release, and the real clients and dig the tests use
  dnsmasq-base dnsmasq-utils busybox isc-dhcp-client bind9-dnsutils
  # IPv6 router advertisements on guest NICs (the agent's radvd); rdisc6 for diagnostics
  radvd ndisc6
  # the CloudStack drop-in test: sshd on 3922 in a namespace, ssh/scp from the "hypervisor"
  openssh-server openssh-client
  # guest metadata and passwords: the clients CloudStack's guest scripts and cloud-init use
  curl wget
  # load balancing: the agent's haproxy; openssl makes the TLS-offload test's certificate
  haproxy openssl
  # redundant router pairs: VRRP and conntrack state sync (issue 16)
  keepalived conntrackd
  # packaging checks (issue 8)
  dpkg-dev lintian systemd
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Packages must not start their daemons on the host: the tests run their own in namespaces.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi

if command -v rustup >/dev/null 2>&1; then
  for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
  done
fi
