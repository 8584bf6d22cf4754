#!/usr/bin/env bash
# The conformance half of `make test`: the scim2-cli suite (PyPI, pinned) against a fresh
# server on each backend, and schemathesis against the admin API's own OpenAPI document on
# each backend. Installs its tools into .ci/.venv and .ci/.venv-api on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/install-python-tools.sh "$PWD/.ci/.venv"
bash .ci/install-api-tester.sh
export PATH="$PWD/.ci/.venv/bin:$PATH"

cargo build --bin roster
bin="${CARGO_TARGET_DIR:-target}/debug/roster"
echo "== scim2-cli conformance, SQLite and PostgreSQL"
bash .ci/interop.sh "$bin" sqlite
bash .ci/interop.sh "$bin" postgres
echo "== admin API against its OpenAPI document (schemathesis), SQLite and PostgreSQL"
bash .ci/api-conformance.sh "$bin" sqlite
bash .ci/api-conformance.sh "$bin" postgres
