#!/usr/bin/env bash
# Install the Node.js test peers' dependencies from their lock files:
#   - tests/peers/oidc-provider: the OpenID Connect provider (npm package
#     oidc-provider) that the SSO integration tests start on 127.0.0.1;
#   - tests/peers/browser: playwright-core, which drives Debian's Chromium
#     (.ci/install-browser.sh) through one complete login.
#
# Usage: .ci/install-node-peers.sh
# Needs node (>= 20.19) and npm on PATH, and the npm registry the first time.
#
# Idempotent: a peer whose node_modules was installed from the current
# package.json + package-lock.json (with the same node version) is skipped;
# otherwise `npm ci` reinstalls it exactly as locked.
set -euo pipefail

prog="install-node-peers"
die() { echo "$prog: $*" >&2; exit 1; }

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
peers=(tests/peers/oidc-provider tests/peers/browser)

command -v node >/dev/null 2>&1 || die "node not found on PATH (install Node.js >= 20.19 with npm)"
command -v npm >/dev/null 2>&1 || die "npm not found on PATH"
node -e '
  const [major, minor] = process.versions.node.split(".").map(Number);
  process.exit(major > 20 || (major === 20 && minor >= 19) ? 0 : 1);
' || die "node $(node --version) is too old: oidc-provider 9 needs Node.js >= 20.19"

# A digest of what decides the install: the manifest, the lock file, node.
install_digest() {
    { cat package.json package-lock.json; node --version; } | sha256sum | cut -d' ' -f1
}

for peer in "${peers[@]}"; do
    dir="$repo/$peer"
    [[ -f "$dir/package-lock.json" ]] || die "$peer/package-lock.json missing"
    cd "$dir"
    stamp="node_modules/.roster-install-digest"
    want="$(install_digest)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        echo "$prog: $peer: node_modules up to date with package-lock.json" >&2
        continue
    fi
    echo "$prog: $peer: npm ci" >&2
    npm ci --no-audit --no-fund --loglevel=warn
    # Check the installed tree is the locked one before stamping it.
    node -e '
      const lock = require("./package-lock.json");
      for (const [path, meta] of Object.entries(lock.packages)) {
        if (!path.startsWith("node_modules/") || meta.dev || meta.optional) continue;
        const got = require(`./${path}/package.json`).version;
        if (got !== meta.version) {
          console.error(`${path}: installed ${got}, locked ${meta.version}`);
          process.exit(1);
        }
      }
    ' || die "$peer: node_modules does not match package-lock.json after npm ci"
    echo "$want" >"$stamp"
    echo "$prog: $peer: installed" >&2
done
