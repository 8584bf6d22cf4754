#!/usr/bin/env bash
# Installs Debian's dnsmasq (the binary only, package dnsmasq-base: no service is started) for
# the domain-verification tests (tests/it/trust.rs runs it on a loopback port as the DNS
# server Roster's resolver asks). Idempotent; needs root (or sudo) and the Debian package
# registry.
set -euo pipefail
if command -v dnsmasq >/dev/null 2>&1 || [[ -x /usr/sbin/dnsmasq ]]; then
    echo "install-dns-peer: dnsmasq present" >&2
    exit 0
fi
sudo=""
[[ "$(id -u)" == 0 ]] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y --no-install-recommends dnsmasq-base ||
    { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends dnsmasq-base; }
