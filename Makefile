# The two commands of README.md, and the few others a contributor uses. Each target that
# builds installs the system packages the build needs first when they are missing
# (.ci/install-system-packages.sh: Debian's apt-get, as root or through sudo).

.PHONY: help deps run test release lint ci

help:
	@echo "make run      the server on 127.0.0.1:8080, SQLite in ./roster-data (ARGS='...' adds serve options)"
	@echo "make test     the whole test suite: cargo test (SQLite and PostgreSQL) and the conformance suites"
	@echo "make release  target/release/roster, the binary to deploy"
	@echo "make lint     cargo fmt --check and clippy, as CI runs them"
	@echo "make ci       what CI runs: bash .ci/run"
	@echo "make deps     only the system packages the build needs"

deps:
	@bash .ci/install-system-packages.sh

run: deps
	cargo run --bin roster -- serve $(ARGS)

test: deps
	cargo test --workspace
	bash .ci/conformance.sh

release: deps
	cargo build --release --locked --bin roster

lint: deps
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

ci:
	bash .ci/run
