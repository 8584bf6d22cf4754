#!/usr/bin/env bash
# Installs Debian's Chromium for the headless login test (tests/it/browser.rs drives it with
# playwright-core from tests/peers/browser). Idempotent; needs root (or sudo) and the
# Debian package registry.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    echo "install-browser: $(chromium --version 2>/dev/null || echo chromium) present" >&2
    exit 0
fi
sudo=""
[[ "$(id -u)" == 0 ]] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y --no-install-recommends chromium ||
    { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends chromium; }
