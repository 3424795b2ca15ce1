#!/usr/bin/env bash
# `hark classify` at length (issue 12): builds hark, makes the inputs under target/ if absent
# (benches/make_classify_inputs.sh), then runs benches/classify_long.py with the arguments
# given, at nice 10. See BENCHMARKS.md section 7 for the figures it printed.
# Usage: benches/classify_long.sh [--rounds 3] [--full-10h] [--sections memory,peer,...]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
benches/make_classify_inputs.sh >/dev/null
exec nice -n 10 python3 benches/classify_long.py "$@"
