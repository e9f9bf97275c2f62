# sck — the two set-up commands are `make run` and `make test`; everything else is optional.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO ?= cargo
DATA  ?= sck-data
SCK_RELEASE := target/release/sck
SCK_DEBUG   := target/debug/sck

.PHONY: help run test test-walls test-rust test-policies test-deploy test-interop bench soak lint fmt

help:
	@echo "make run    build sck and start the gateway on SQLite with policies/ compiled, signed and active"
	@echo "make test   the whole test suite, on SQLite and on a throw-away PostgreSQL"
	@echo "make test-interop  the interop suite against a real OPA (SCK_OPA=/path/to/opa, or opa on PATH)"
	@echo "make bench  benchmarks (release build); numbers go to stdout and target/criterion"
	@echo "make soak   10 minutes of mixed steady load; zero errors, flat memory, ledger verifies"
	@echo "make lint   cargo fmt --check and cargo clippy -D warnings"

## run: build the release binary, check and test policies/, then start the gateway on SQLite
## (sck-data/sck.db). The first start creates the default org, compiles, signs and activates
## policies/, and prints a root admin key and a sidecar token once; then examples per endpoint.
run:
	$(CARGO) build --release --bin sck
	$(SCK_RELEASE) bundle check policies
	$(SCK_RELEASE) bundle test policies
	@mkdir -p $(DATA)
	SCK_DATA_DIR=$(DATA) SCK_DATABASE_URL=$(DATA)/sck.db $(SCK_RELEASE) serve --examples

## test: the crate walls, every Rust test (unit, property, end-to-end against the real binary)
## with PostgreSQL available as SCK_TEST_DATABASE_URL, the Rego tests of the default policy
## tree, then deploy/.
test: test-walls test-rust test-policies test-deploy

## test-walls: sck-wire has no runtime, database or HTTP crate in its dependency tree and
## sck-enforce no HTTP crate (scripts/check-walls.sh); no crate's modules import each other in
## a circle (scripts/check-module-cycles.py; sck-bundler's bundle/policy/decision circles are
## known and not yet checked).
test-walls:
	scripts/check-walls.sh
	scripts/check-module-cycles.py ledger/src wire/src enforce/src gateway/src cli/src

test-rust:
	scripts/with-postgres.sh $(CARGO) test --workspace --locked

# The binary `test-rust` built (cargo test builds it with the test feature set; `cargo build
# --bin sck` would build every dependency a second time with another one).
test-policies:
	$(CARGO) test --workspace --locked --no-run
	$(SCK_DEBUG) bundle check policies
	$(SCK_DEBUG) bundle test policies

## test-deploy: deploy/ against the Kubernetes, compose-spec, Dockerfile and systemd checkers
## (installed pinned under target/deploy-tools/), then broken copies that must be refused.
test-deploy:
	scripts/validate-deploy.sh --self-test

## test-interop: the interop suite against a real OPA: SCK_OPA (a path to the binary) or `opa` on
## PATH. Without one it stops at once with exit status 2. Not part of `test`: a user's machine has
## no OPA; CI runs it once per binary in ../shared/bin/ (see .ci/run).
OPA_BIN := $(if $(SCK_OPA),$(abspath $(SCK_OPA)),$(shell command -v opa 2>/dev/null))
test-interop:
	@if [ -z "$(OPA_BIN)" ] || [ ! -x "$(OPA_BIN)" ]; then \
	  echo "make test-interop needs a real OPA: set SCK_OPA=/path/to/opa (for example ../shared/bin/opa-0.60) or put opa on PATH" >&2; \
	  exit 2; \
	fi
	@echo "test-interop: $$("$(OPA_BIN)" version | head -n 1) ($(OPA_BIN))"
	SCK_OPA="$(OPA_BIN)" scripts/with-postgres.sh $(CARGO) test -p sck --locked --features interop --test 'interop_*'

bench:
	$(CARGO) bench -p sck-bundler --bench bundle
	scripts/with-postgres.sh $(CARGO) bench -p sck-ledger --bench ledger
	scripts/bench-ledger-curve.sh
	scripts/bench-bundle-memory.sh
	scripts/bench-serve.sh
	scripts/bench-tokens.sh
	scripts/bench-decide.sh
	scripts/bench-fleet.sh
	scripts/bench-xsck.sh
	scripts/bench-proxy.sh

## soak: 10 minutes of mixed steady load (SOAK_SECONDS, SOAK_RATE); zero errors, flat memory,
## and a ledger export that verifies. Not part of `test`.
soak:
	scripts/soak.sh

lint: test-walls
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt:
	$(CARGO) fmt --all
