# sck — the two set-up commands are `make run` and `make test`; everything else is optional.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO ?= cargo
DATA  ?= sck-data
SCK_RELEASE := target/release/sck
SCK_DEBUG   := target/debug/sck

.PHONY: help run test test-rust test-policies bench lint fmt

help:
	@echo "make run    build sck, then check, test, build and sign the default policy bundle"
	@echo "make test   the whole test suite, on SQLite and on a throw-away PostgreSQL"
	@echo "make bench  benchmarks (release build); numbers go to stdout and target/criterion"
	@echo "make lint   cargo fmt --check and cargo clippy -D warnings"

## run: build the release binary, then check, test, build and sign policies/ with a dev key.
run:
	$(CARGO) build --release --bin sck
	@mkdir -p $(DATA)
	@[ -f $(DATA)/dev-signing-key.pem ] || $(SCK_RELEASE) bundle keygen --out $(DATA)/dev-signing-key.pem
	$(SCK_RELEASE) bundle check policies
	$(SCK_RELEASE) bundle test policies
	$(SCK_RELEASE) bundle build policies -o $(DATA)/default-bundle.tar.gz \
		--org default --name gateway --version 0.1.0 --revision "dev-$$(git rev-parse --short HEAD 2>/dev/null || echo local)" \
		--signing-key $(DATA)/dev-signing-key.pem --key-id sck-dev
	$(SCK_RELEASE) bundle verify $(DATA)/default-bundle.tar.gz \
		--verification-key $(DATA)/dev-signing-key.pem.pub.pem --key-id sck-dev
	@echo
	@echo "Default bundle:  $(DATA)/default-bundle.tar.gz (ES256, key id sck-dev)"
	@echo "Public key:      $(DATA)/dev-signing-key.pem.pub.pem"
	@echo "Inspect it:      $(SCK_RELEASE) bundle inspect $(DATA)/default-bundle.tar.gz"

## test: every Rust test (unit, property, end-to-end against the real binary) with PostgreSQL
## available as SCK_TEST_DATABASE_URL, then the Rego tests of the default policy tree.
test: test-rust test-policies

test-rust:
	scripts/with-postgres.sh $(CARGO) test --workspace --locked

test-policies:
	$(CARGO) build --bin sck --locked
	$(SCK_DEBUG) bundle check policies
	$(SCK_DEBUG) bundle test policies

bench:
	$(CARGO) bench -p sck-bundler --bench bundle
	scripts/bench-bundle-memory.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt:
	$(CARGO) fmt --all
