# Two commands on a fresh machine: `make demo` and `make test`.
# Each installs what it needs first (the pinned Codex CLI through npm).

CODEX_CLI := codex-cli
CODEX_STAMP := $(CODEX_CLI)/node_modules/.installed
# Tests and the demo run the pinned CLI, whatever `codex` may be on PATH.
export CODEX_BIN := $(CURDIR)/$(CODEX_CLI)/node_modules/.bin/codex
# The MCP clients the tests drive the server with (Claude Code), pinned too.
MCP_CLIENTS := mcp-clients
MCP_CLIENTS_STAMP := $(MCP_CLIENTS)/node_modules/.installed
# The newest verified Codex and Claude Code, pinned like the oldest and
# bumped by hand (with SUPPORTED_VERSIONS in src/codex_bin/mod.rs and the
# README's "Finding Codex"): `make test` runs a subset on them too.
CODEX_CLI_NEWEST := codex-cli-newest
CODEX_NEWEST_STAMP := $(CODEX_CLI_NEWEST)/node_modules/.installed
CODEX_NEWEST_BIN := $(CURDIR)/$(CODEX_CLI_NEWEST)/node_modules/.bin/codex
# The official MCP Python SDK (a client with an elicitation callback),
# pinned with its resolved dependencies, in a venv of its own.
PYTHON_CLIENT := $(MCP_CLIENTS)/python
PYTHON_CLIENT_STAMP := $(PYTHON_CLIENT)/.venv/.installed
MCP_CLIENTS_NEWEST := mcp-clients-newest
MCP_CLIENTS_NEWEST_STAMP := $(MCP_CLIENTS_NEWEST)/node_modules/.installed
CLAUDE_NEWEST_BIN := $(CURDIR)/$(MCP_CLIENTS_NEWEST)/node_modules/.bin/claude

.PHONY: system-tools macos-targets setup demo test lint lint-macos shipped-deps no-c-crypto package fuzz bench bench-print

setup: system-tools macos-targets $(CODEX_STAMP) $(MCP_CLIENTS_STAMP) $(CODEX_NEWEST_STAMP) $(MCP_CLIENTS_NEWEST_STAMP) $(PYTHON_CLIENT_STAMP)

# Most users are on macOS. The crate is type-checked and linted for both
# Apple targets on every CI run (`lint-macos`): `cargo check` and `clippy`
# need only the targets' standard libraries, no Apple linker or SDK.
MACOS_TARGETS := aarch64-apple-darwin x86_64-apple-darwin
macos-targets:
	rustup target add $(MACOS_TARGETS)

# The picker's end-to-end tests drive a real terminal (tmux); the MCP
# elicitation test runs a small MCP server in Python; the cross-host tests
# make network namespaces with iproute2's `ip`; the wss:// tests make their
# test CA with the `openssl` command. Each comes from Debian's packages when
# missing.
APT := $(if $(filter 0,$(shell id -u)),,sudo )apt-get
system-tools:
	@command -v python3 >/dev/null || { echo "python3 is needed by the tests" >&2; exit 1; }
	@command -v tmux >/dev/null || $(APT) install -y -q tmux || { $(APT) update -q && $(APT) install -y -q tmux; }
	@tmux -V
	@command -v ip >/dev/null || $(APT) install -y -q iproute2 || { $(APT) update -q && $(APT) install -y -q iproute2; }
	@ip -V
	@command -v openssl >/dev/null || $(APT) install -y -q openssl || { $(APT) update -q && $(APT) install -y -q openssl; }

# `npm ci` installs exactly the lockfile; re-run only when it changes.
$(CODEX_STAMP): $(CODEX_CLI)/package.json $(CODEX_CLI)/package-lock.json
	cd $(CODEX_CLI) && npm ci --no-audit --no-fund
	$(CODEX_BIN) --version
	touch $@

$(MCP_CLIENTS_STAMP): $(MCP_CLIENTS)/package.json $(MCP_CLIENTS)/package-lock.json
	cd $(MCP_CLIENTS) && npm ci --no-audit --no-fund
	$(MCP_CLIENTS)/node_modules/.bin/claude --version
	touch $@

# Re-made only when the pins change.
$(PYTHON_CLIENT_STAMP): $(PYTHON_CLIENT)/requirements.txt
	python3 -m venv $(PYTHON_CLIENT)/.venv
	$(PYTHON_CLIENT)/.venv/bin/pip install --quiet --disable-pip-version-check -r $(PYTHON_CLIENT)/requirements.txt
	$(PYTHON_CLIENT)/.venv/bin/python -c "import mcp"
	touch $@

$(CODEX_NEWEST_STAMP): $(CODEX_CLI_NEWEST)/package.json $(CODEX_CLI_NEWEST)/package-lock.json
	cd $(CODEX_CLI_NEWEST) && npm ci --no-audit --no-fund
	$(CODEX_NEWEST_BIN) --version
	touch $@

$(MCP_CLIENTS_NEWEST_STAMP): $(MCP_CLIENTS_NEWEST)/package.json $(MCP_CLIENTS_NEWEST)/package-lock.json
	cd $(MCP_CLIENTS_NEWEST) && npm ci --no-audit --no-fund
	$(CLAUDE_NEWEST_BIN) --version
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

# The compatibility subset, run again on the newest verified Codex: every
# tool, approvals (commands, file changes, permissions, questions,
# elicitations; asked of the caller, and of the person through a form), resume, interrupt, MCP tasks, the picker's attach and the
# Codex terminal UI on a live turn, recovery, waits and interrupts from a
# second sidecar, the shared and unix:// servers, remote servers (auth,
# wss://, named endpoints, a second host and its network faults), waits on
# several runs, rate limits, warnings and the run cap,
# and the version checks. Filters of `cargo test --test it` (each names one
# test, or a module ending in `::`).
COMPAT_TESTS := \
	suite::appserver::handshake_reports_the_server_and_its_codex_home \
	suite::cli::check_finds_codex_through_codex_bin_then_path_then_the_project_install \
	suite::versions:: \
	suite::mcp::every_tool_in_process \
	suite::mcp::the_built_binary_over_stdio \
	suite::mcp::approvals_are_the_callers_to_accept_or_decline \
	suite::mcp::file_change_permission_and_question_requests_wait_for_the_caller \
	suite::mcp::mcp_elicitations_wait_for_the_caller \
	suite::person::the_person_accepts_or_declines_a_command_in_the_form \
	suite::person::a_dismissed_form_hands_the_request_back_to_the_caller \
	suite::person::raw::a_task_shows_input_required_while_the_person_is_asked \
	suite::engine::approvals_follow_the_permissions_profile \
	suite::engine::resume_runs_a_second_turn_on_the_same_thread_with_its_context \
	suite::mcp::a_resume_gets_its_own_permissions_on_a_loaded_thread \
	suite::mcp::interrupt_stops_a_running_turn_and_is_a_no_op_on_a_finished_one \
	suite::mcp::a_run_as_a_task_reports_progress_and_ends_with_the_wait_result \
	suite::mcp::cancelling_a_task_interrupts_the_codex_turn \
	suite::mcp::conversations_run_as_tasks_and_a_cancel_interrupts_their_turn \
	suite::picker::enter_attaches_the_codex_ui_to_the_running_turn_and_comes_back \
	suite::mcp::a_person_attached_with_the_codex_ui_sees_the_same_turn \
	suite::recovery::a_new_sidecar_completes_the_wait_of_one_killed_mid_run \
	suite::follow:: \
	suite::shared::four_sidecars_at_once_share_one_app_server \
	suite::unix::unix_mode_runs_on_someone_elses_server_and_never_stops_it \
	suite::remote:: \
	suite::picker_remote:: \
	suite::remote_faults:: \
	suite::endpoints:: \
	suite::wait_many:: \
	suite::budget::
# The Claude Code tests, run again on the newest verified Claude Code.
CLAUDE_TESTS := suite::claude_code:: suite::plugin:: suite::claude_print:: suite::claude_dialog::

# Everything on the oldest verified Codex and the pinned Claude Code, then
# the subsets on the newest of each.
# `--workspace`: the root crate's tests and the unit tests of the test
# scaffolding in crates/test-support (the scripted model's markers).
test: setup
	cargo test --locked --workspace
	CODEX_BIN=$(CODEX_NEWEST_BIN) cargo test --locked --test it -- $(COMPAT_TESTS)
	CLAUDE_BIN=$(CLAUDE_NEWEST_BIN) cargo test --locked --test it -- $(CLAUDE_TESTS)

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

lint: lint-macos shipped-deps no-c-crypto
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

lint-macos: macos-targets
	for target in $(MACOS_TARGETS); do \
		cargo clippy --workspace --all-targets --locked --target $$target -- -D warnings || exit 1; \
	done

# What the installed binaries are built from (the shipped crate's normal
# dependencies) holds no web server: the scripted models and their axum are
# test scaffolding, in crates/test-support. Fails naming the crates found.
SERVER_CRATES := axum
shipped-deps:
	@tree=$$(cargo tree --locked -e normal -p codex-mcp-sidecar --prefix none --format '{p}') || exit 1; \
	found=$$(echo "$$tree" | awk '{print $$1}' | sort -u | grep -Fx -e $(SERVER_CRATES)); \
	if [ -n "$$found" ]; then \
		echo "the shipped crate depends on a web server: $$found" >&2; \
		cargo tree --locked -e normal -p codex-mcp-sidecar -i $$found >&2; \
		exit 1; \
	fi; \
	echo "shipped-deps: no $(SERVER_CRATES) in codex-mcp-sidecar's normal dependencies"

# The crypto of the shipped crate (TLS for wss://, the JWT) is Rust and
# assembly only: ring and aws-lc-sys compile C for the target even under
# `cargo check`, and fail for the Apple targets without an Apple SDK
# (`TargetConditionals.h`), so `lint-macos` would break. rustls and
# tokio-rustls pull one of them in by default; this fails, naming the crate
# and who pulls it, when one comes back.
C_CRYPTO_CRATES := ring aws-lc-sys aws-lc-rs
no-c-crypto:
	@tree=$$(cargo tree --locked -e normal -p codex-mcp-sidecar --target all --prefix none --format '{p}') || exit 1; \
	found=$$(echo "$$tree" | awk '{print $$1}' | sort -u | grep -Fx $(addprefix -e ,$(C_CRYPTO_CRATES))); \
	if [ -n "$$found" ]; then \
		for crate in $$found; do \
			echo "the shipped crate depends on $$crate, which compiles C:" >&2; \
			cargo tree --locked -e normal -p codex-mcp-sidecar --target all -i $$crate >&2; \
		done; \
		exit 1; \
	fi; \
	echo "no-c-crypto: no $(C_CRYPTO_CRATES) in codex-mcp-sidecar's normal dependencies"

# The crate as crates.io would get it (what goes in: `include` in
# Cargo.toml), unpacked and built on its own, so that a file the build needs
# but the package lacks fails here rather than at `cargo publish`. The
# warnings that the examples, tests and benches are left out are expected.
# The build shares target/ with the others, so it reuses their dependencies:
# about a minute on this project's 2-core machine. It relinks target/debug's
# binaries from the packaged sources; the next cargo build or test relinks
# them from the checkout.
package:
	cargo package --locked

# Each fuzz target in fuzz/ for SECONDS (default 60); needs cargo-fuzz and a
# nightly compiler, or RUSTC_BOOTSTRAP=1 on stable (the script decides).
# Not part of `make test` or CI.
SECONDS ?= 60
fuzz:
	scripts/fuzz.sh $(SECONDS)
