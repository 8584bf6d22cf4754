#!/usr/bin/env bash
# Installs the Debian packages Roster builds against: libxmlsec1 (SAML signatures and
# encryption, through the samael crate), libxml2 and OpenSSL headers, pkg-config, and
# libclang for samael's bindgen. Idempotent: installs only what is missing. Needs root
# (or sudo) and the Debian package registry.
set -euo pipefail
packages=(libxmlsec1-dev libxml2-dev libssl-dev pkg-config libclang-dev)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
    echo "install-system-packages: all present" >&2
    exit 0
fi
sudo=""
[[ "$(id -u)" == 0 ]] || sudo="sudo"
echo "install-system-packages: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y --no-install-recommends "${missing[@]}" ||
    { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends "${missing[@]}"; }
