#!/usr/bin/env bash
# The whole test suite: `cargo test --workspace --locked` (extra arguments are passed on to
# it), then a count of the tests that passed without running because this machine lacks what
# they need (root, clang, etcd, podman; codegen::testkit::skip records them), and how to get it.
# Exits with cargo's status.
set -uo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target"
log="$(cd "$target" && pwd)/test-skips.log"
: >"$log"
export CP_TEST_SKIP_LOG="$log"

cargo test --workspace --locked "$@"
status=$?

count() { grep -c "^$1	" "$log" || true; }
root=$(count root)
clang=$(count clang)
etcd=$(count etcd)
podman=$(count podman)
total=$((root + clang + etcd + podman))
echo
if [ "$total" -eq 0 ]; then
  echo "kernel tests: none skipped (root, clang, etcd and podman were all available)"
else
  echo "kernel tests: $total skipped (passed without running; names in $log):"
  [ "$root" -gt 0 ] && echo "  $root need root (BPF, network namespaces): run as root"
  [ "$clang" -gt 0 ] && echo "  $clang need clang (Debian packages clang-19 llvm-19 libelf-dev)"
  [ "$etcd" -gt 0 ] && echo "  $etcd need an etcd binary (Debian package etcd-server)"
  [ "$podman" -gt 0 ] && echo "  $podman need real containers (Debian packages podman runc containernetworking-plugins busybox-static)"
  echo "  .ci/run installs every package the suite needs (apt, as root) and runs this script"
fi
exit "$status"
