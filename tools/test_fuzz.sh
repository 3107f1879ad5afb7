#!/usr/bin/env bash
# The fuzzers' short runs (CI): the loader's structural check of library
# files (atheris, from tests/fuzz/binary_corpus) and the header's table
# helpers (libFuzzer under ASan). KESTREL_FUZZ_SECONDS per fuzzer (default
# 20); the long runs are docs/reliability.md's, by hand with -runs=N.
KESTREL_WITH_TESTS=1 source "$(dirname "$0")/setup_env.sh"
SECONDS_EACH=${KESTREL_FUZZ_SECONDS:-20}
"$PY" -m pip install -q atheris
work="$BUILD/fuzz" && rm -rf "$work" && mkdir -p "$work/corpus"
cp "$ROOT"/tests/fuzz/binary_corpus/* "$work/corpus/"  # libFuzzer adds to its corpus: a copy
echo "== the loader's structural check of library files (atheris, $SECONDS_EACH s)"
(cd "$work" && PYTHONPATH="$ROOT/python" "$PY" "$ROOT/tests/fuzz/fuzz_library_check.py" \
  -max_total_time="$SECONDS_EACH" -print_final_stats=1 "$work/corpus" 2>&1 |
  grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb)|ERROR|Exception")
echo "== the header's table helpers (libFuzzer under ASan, $SECONDS_EACH s)"
clang -g -O1 -fsanitize=fuzzer,address -I"$ROOT/include" "$ROOT/tests/fuzz/fuzz_table_check.c" -o "$work/fuzz_table_check"
(cd "$work" && ./fuzz_table_check -max_total_time="$SECONDS_EACH" -print_final_stats=1 2>&1 |
  grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb)|ERROR")
