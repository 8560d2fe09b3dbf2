# Two commands on a fresh machine: `make demo` and `make test`.
# Each installs what it needs first (the pinned Codex CLI through npm).

CODEX_CLI := codex-cli
CODEX_STAMP := $(CODEX_CLI)/node_modules/.installed
# Tests and the demo run the pinned CLI, whatever `codex` may be on PATH.
export CODEX_BIN := $(CURDIR)/$(CODEX_CLI)/node_modules/.bin/codex
# The MCP clients the tests drive the server with (Claude Code), pinned too.
MCP_CLIENTS := mcp-clients
MCP_CLIENTS_STAMP := $(MCP_CLIENTS)/node_modules/.installed

.PHONY: system-tools macos-targets setup demo test lint lint-macos fuzz bench bench-print

setup: system-tools macos-targets $(CODEX_STAMP) $(MCP_CLIENTS_STAMP)

# Most users are on macOS. The crate is type-checked and linted for both
# Apple targets on every CI run (`lint-macos`): `cargo check` and `clippy`
# need only the targets' standard libraries, no Apple linker or SDK.
MACOS_TARGETS := aarch64-apple-darwin x86_64-apple-darwin
macos-targets:
	rustup target add $(MACOS_TARGETS)

# The picker's end-to-end tests drive a real terminal (tmux); the MCP
# elicitation test runs a small MCP server in Python. tmux comes from
# Debian's packages when missing.
APT := $(if $(filter 0,$(shell id -u)),,sudo )apt-get
system-tools:
	@command -v python3 >/dev/null || { echo "python3 is needed by the tests" >&2; exit 1; }
	@command -v tmux >/dev/null || $(APT) install -y -q tmux || { $(APT) update -q && $(APT) install -y -q tmux; }
	@tmux -V

# `npm ci` installs exactly the lockfile; re-run only when it changes.
$(CODEX_STAMP): $(CODEX_CLI)/package.json $(CODEX_CLI)/package-lock.json
	cd $(CODEX_CLI) && npm ci --no-audit --no-fund
	$(CODEX_BIN) --version
	touch $@

$(MCP_CLIENTS_STAMP): $(MCP_CLIENTS)/package.json $(MCP_CLIENTS)/package-lock.json
	cd $(MCP_CLIENTS) && npm ci --no-audit --no-fund
	$(MCP_CLIENTS)/node_modules/.bin/claude --version
	touch $@

# The demo is the fanout example, offline on the scripted model: 4 runs
# that stream for up to DEMO_SECONDS, resume one, print a table. It prints
# first the command that watches the runs live in codex-runs, and keeps its
# throwaway directories afterwards (it says where, and how to remove them).
# tests/it/suite/examples.rs runs exactly these flags, with short streams.
DEMO_FLAGS := --runs 4 --keep
DEMO_SECONDS := 20

demo: setup
	cargo build --bin codex-mcp-sidecar --bin codex-runs --example fanout
	cargo run --quiet --example fanout -- $(DEMO_FLAGS) --seconds $(DEMO_SECONDS)

test: setup
	cargo test --locked

# Release builds; runs every benchmark, prints the numbers and rewrites
# docs/benchmarks.md with them and the machine. The picker's own benchmark
# prints its numbers too. Only Codex is needed, not tmux or the MCP clients.
bench: $(CODEX_STAMP)
	cargo bench --locked --bench sidecar -- --doc $(CURDIR)/docs/benchmarks.md
	cargo bench --locked --bench picker_first_frame

# The same benchmarks as CI runs them: every figure printed against its
# target, nothing rewritten. A missed target is reported, not a failure:
# timings on a shared machine are evidence, not a gate.
bench-print: $(CODEX_STAMP)
	cargo bench --locked --bench sidecar
	cargo bench --locked --bench picker_first_frame

lint: lint-macos
	cargo fmt --all -- --check
	cargo clippy --all-targets --locked -- -D warnings

lint-macos: macos-targets
	for target in $(MACOS_TARGETS); do \
		cargo clippy --all-targets --locked --target $$target -- -D warnings || exit 1; \
	done

# Each fuzz target in fuzz/ for SECONDS (default 60); needs cargo-fuzz and a
# nightly compiler, or RUSTC_BOOTSTRAP=1 on stable (the script decides).
# Not part of `make test` or CI.
SECONDS ?= 60
fuzz:
	scripts/fuzz.sh $(SECONDS)
