#!/usr/bin/env bash
# valgrind memcheck over the Catch2 tests; the header-only consumer embeds
# Python, loads the real bridge and resolves real tensors under it.
KESTREL_WITH_TESTS=1 source "$(dirname "$0")/setup_env.sh"
command -v valgrind >/dev/null || { apt_install valgrind; }
TESTS="$BUILD/tests"
"$PY" -c "import kestrel_mps_torch_ext" 2>/dev/null || build_and_install_wheel
build_catch2_tests
VG=(valgrind -q --error-exitcode=9 --suppressions="$ROOT/tools/valgrind.supp")
for t in kestrel_header_tests kestrel_helper_tests kestrel_queue_discipline_tests; do
  echo "== valgrind $t"
  "${VG[@]}" --leak-check=full "$TESTS/tests/c/$t"
done
echo "== valgrind kestrel_consumer_tests (Python and torch embedded; leaks not checked: the interpreter is never finalized)"
PYTHONMALLOC=malloc "${VG[@]}" --leak-check=no "$TESTS/tests/c/kestrel_consumer_tests"
