#!/usr/bin/env bash
# Install everything ryu-pptp-alg needs on Debian 12, as root. Safe to run again.
#   apt: Open vSwitch, Mininet, tshark, the real PPTP peers, netfilter tools, chromium
#   venv: .venv made from Debian's python3 with system site packages (Mininet),
#         Ryu 4.34 built with setuptools<67 (constraints.txt)
#   the packet-in path compiled with mypyc (scripts/compile.py; again when its sources change)
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  openvswitch-switch mininet tshark pptpd pptp-linux prometheus etcd-server
  iproute2 iptables ethtool tcpdump curl iputils-ping python3-venv python3-dev gcc make
  chromium  # the web page's browser test drives it with Playwright (no browser download)
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing apt packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer once, non-interactively.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

VENV=.venv
if [[ ! -x $VENV/bin/python ]]; then
  echo "setup: creating $VENV"
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi

stamp=$VENV/.installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp || constraints.txt -nt $stamp ]]; then
  echo "setup: installing Python packages into $VENV"
  PIP_CONSTRAINT="$PWD/constraints.txt" PIP_DISABLE_PIP_VERSION_CHECK=1 \
    "$VENV/bin/pip" install -q -e '.[test,bench,compile]'
  "$VENV/bin/python" -c "import ryu_pptp_alg.app" >/dev/null
  touch "$stamp"
fi
"$VENV/bin/python" scripts/compile.py
echo "setup: ready ($VENV/bin/ryu-pptp-alg)"
