#!/usr/bin/env bash
# Proves README.md's first command on a fresh machine: removes the build packages a fresh
# machine lacks (libclang for samael's bindgen, libxmlsec1's headers), clones this
# repository afresh, runs the command there as written (with ROSTER_LISTEN on a free port:
# the command's own default, 8080, may be taken), and checks that the server comes up on its
# embedded SQLite default and answers its front door. The command must install what it
# needs itself. Needs root (or sudo): it removes and the command reinstalls Debian packages.
#
# The clone builds into this checkout's target directory (CARGO_TARGET_DIR), so the
# dependencies it compiles serve the test build that follows; the build scripts that need
# the packages (samael's) still run, since nothing was built for the clone's profile
# before on a fresh CI machine — and when something was, they are made to run again.
#
# Usage: .ci/first-command.sh "COMMAND"
set -euo pipefail
first="$1"
repo="$(cd "$(dirname "$0")/.." && pwd)"
sudo=""
[[ "$(id -u)" == 0 ]] || sudo="sudo"

echo "-- removing the build packages a fresh machine lacks"
mapfile -t present < <(dpkg-query -W -f='${Package} ${Status}\n' 'libclang*' libxmlsec1-dev 2>/dev/null |
    awk '/install ok installed/ { print $1 }')
if ((${#present[@]})); then
    DEBIAN_FRONTEND=noninteractive $sudo apt-get remove -y -q "${present[@]}" >/dev/null
fi
if pkg-config --exists xmlsec1 2>/dev/null; then
    echo "first-command: xmlsec1's headers are still installed" >&2
    exit 1
fi
# The build script that needs them must run again for this proof.
target="${CARGO_TARGET_DIR:-$repo/target}"
rm -rf "$target"/debug/build/samael-* "$target"/debug/.fingerprint/samael-*

work="$(mktemp -d)"
pid=""
cleanup() {
    [[ -n "$pid" ]] && kill -- "-$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
git clone -q "$repo" "$work/roster"
cd "$work/roster"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
echo "-- $first   (in a fresh clone; ROSTER_LISTEN=127.0.0.1:$port)"
export CARGO_TARGET_DIR="$target"
unset ROSTER_DATABASE_URL ROSTER_DATA_DIR ROSTER_CONFIG ROSTER_PUBLIC_URL
ROSTER_LISTEN="127.0.0.1:$port" setsid bash -c "$first" >"$work/first.log" 2>&1 &
pid=$!
# Up to 40 minutes: on a fresh machine the command builds everything first.
for _ in $(seq 1 2400); do
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "first-command: '$first' exited before the server came up:" >&2
        tail -40 "$work/first.log" >&2
        exit 1
    fi
    curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    sleep 1
done
curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null || {
    echo "first-command: no server on port $port" >&2; tail -40 "$work/first.log" >&2; exit 1; }
curl -fsS "http://127.0.0.1:$port/" | grep -q 'href="/console"' || {
    echo "first-command: the front door does not link the console" >&2; exit 1; }
[[ -f roster-data/roster.db ]] || {
    echo "first-command: no SQLite database in ./roster-data" >&2; exit 1; }
grep -q "install-system-packages: installing" "$work/first.log" || {
    echo "first-command: the command did not install the build packages" >&2; exit 1; }
echo "-- the first command built, installed what it needed and served (SQLite in ./roster-data)"
