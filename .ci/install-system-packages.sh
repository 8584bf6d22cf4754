#!/usr/bin/env bash
# Installs the Debian packages Roster builds against: libxmlsec1 (SAML signatures and
# encryption, through the samael crate), libxml2 and OpenSSL headers, pkg-config, and
# libclang for samael's bindgen. Idempotent: installs only what is missing. Needs root
# (or sudo) and the Debian package registry.
set -euo pipefail
packages=(libxmlsec1-dev libxml2-dev libssl-dev pkg-config libclang-dev)
if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
    # Not Debian or Ubuntu: say what to install instead of guessing a package manager.
    if pkg-config --exists xmlsec1-openssl libxml-2.0 openssl 2>/dev/null; then
        exit 0
    fi
    echo "install-system-packages: this is not a Debian-like system; install the development" >&2
    echo "packages of xmlsec1 (with OpenSSL), libxml2, OpenSSL, pkg-config and libclang" >&2
    echo "(Fedora: xmlsec1-devel xmlsec1-openssl-devel libxml2-devel openssl-devel pkgconf clang-devel;" >&2
    echo " macOS/Homebrew: libxmlsec1 pkg-config llvm), then run this again." >&2
    exit 1
fi
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
