#!/usr/bin/env bash
# Every per_packet row of this tree's datapath against BASE's, in one process
# (runtime-loader/examples/per_packet_ab.rs; Documentation/performance.md). Needs root.
#
#   tools/per-packet-ab.sh BASE PLACEMENTS ROUNDS [--rows=SUBSTRING,...]
#
# Builds `per_packet_pin` in this tree and in a worktree of BASE, given this tree's pin example,
# layout and bench support (so that both build the same policy and packets), less the load
# options and policy fields BASE did not have yet; pins PLACEMENTS sets of datapaths per
# variant in turn (base, main and a second base set, "aa", the method's own noise), in an order
# that rotates and reverses, then measures them with `per_packet_ab` and removes the pins.
# Keep the machine otherwise idle while it runs.
set -euo pipefail
base=${1:?BASE revision} placements=${2:?PLACEMENTS} rounds=${3:?ROUNDS}
rows=${4:-}
root=$(git rev-parse --show-toplevel)
work=${PER_PACKET_AB_WORK:-/tmp/per-packet-ab}
pins=/sys/fs/bpf/per-packet-ab
mkdir -p "$work"
main_target=${CARGO_TARGET_DIR:-$root/target}
base_target=$work/target

tree=$work/base
rm -rf "$tree"
git -C "$root" worktree prune
git -C "$root" worktree add --detach "$tree" "$base" >/dev/null
support=$tree/runtime-loader/benches/support
mkdir -p "$support" "$tree/runtime-loader/examples"
cp "$root/runtime-loader/benches/support/pinned.rs" "$support/"
cp "$root/runtime-loader/examples/per_packet_pin.rs" "$tree/runtime-loader/examples/"
older=()
grep -rq "pub audited" "$tree/ir/src" || older+=(-e '/audited: vec!\[\],/d')
grep -q "pub max_entries:" "$tree/runtime-loader/src/load.rs" ||
    older+=(-e '/The policy map sized from/,/^            ),$/d')
grep -q "pub verify:" "$tree/runtime-loader/src/load.rs" ||
    older+=(-e '/verify: runtime_loader::load::Verify::Both,/d')
sed "${older[@]}" -e '' "$root/runtime-loader/benches/support/datapath.rs" > "$support/datapath.rs"
(cd "$tree" && CARGO_TARGET_DIR=$base_target cargo build --release -p runtime-loader \
    --example per_packet_pin)
(cd "$root" && CARGO_TARGET_DIR=$main_target cargo build --release -p runtime-loader \
    --example per_packet_pin --example per_packet_ab)

mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
rm -rf "$pins"
mkdir -p "$pins"
trap 'rm -rf "$pins"; git -C "$root" worktree remove --force "$tree"' EXIT
variants=(base main aa)
for k in $(seq 0 $((placements - 1))); do
    order=()
    for i in 0 1 2; do order+=("${variants[$(((k + i) % 3))]}"); done
    if [ $((k / 3 % 2)) = 1 ]; then order=("${order[2]}" "${order[1]}" "${order[0]}"); fi
    for v in "${order[@]}"; do
        bin=$base_target/release/examples/per_packet_pin
        [ "$v" = main ] && bin=$main_target/release/examples/per_packet_pin
        "$bin" "$pins/$v$k" >/dev/null
    done
done
dirs() { local d=(); for k in $(seq 0 $((placements - 1))); do d+=("$pins/$1$k"); done
    (IFS=,; echo "${d[*]}"); }
"$main_target/release/examples/per_packet_ab" $rows "$rounds" \
    base="$(dirs base)" main="$(dirs main)" aa="$(dirs aa)"
