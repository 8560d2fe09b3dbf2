#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for SECONDS each (default 60) and prints,
# per target, how many inputs it ran and whether it crashed. A crash stops
# the script with a non-zero status; the input that crashed is in
# fuzz/artifacts/<target>/ (replay it: cargo fuzz run <target> <file>).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# cargo fuzz needs a nightly compiler (sanitizer and coverage flags are
# -Z options). With a nightly toolchain in rustup, that one is used;
# without one (a machine with a single stable toolchain), the stable
# compiler is told to accept nightly flags with RUSTC_BOOTSTRAP=1, which
# works for fuzzing but is not something to build releases with.
# FUZZ_TOOLCHAIN=stable forces the second way. cargo-fuzz itself is
# installed from crates.io when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
case $seconds in
    '' | *[!0-9]*) echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

toolchain=()
if [[ ${FUZZ_TOOLCHAIN:-} != stable ]] && rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=(+nightly)
    echo "== toolchain: $(rustc +nightly --version)"
else
    export RUSTC_BOOTSTRAP=1
    echo "== toolchain: $(rustc --version), with RUSTC_BOOTSTRAP=1"
fi

cd fuzz
if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo "${toolchain[@]}" fuzz list)
fi
mkdir -p logs
cargo "${toolchain[@]}" fuzz build -O 2>&1 | tail -n 3

status=0
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    log="logs/$target.log"
    echo "== $target: ${seconds}s"
    # corpus/<target> collects what the fuzzer finds (not committed);
    # seeds/<target> are hand-written starting points (committed, read-only).
    if cargo "${toolchain[@]}" fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1; then
        outcome=ok
    else
        outcome="CRASH (see fuzz/$log and fuzz/artifacts/$target/)"
        status=1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1)
    coverage=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
    echo "   $target: ${runs:-?} inputs in ${seconds}s, ${coverage:-cov: ?}, corpus $(ls "corpus/$target" | wc -l) files: $outcome"
done
exit $status
