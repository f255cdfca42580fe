#!/usr/bin/env bash
# Count what a server spends per RPC in repeatable units: instructions (callgrind) or
# syscalls (strace -c), by difference of two loads with a fixed number of calls, so that
# start-up, handshakes and teardown cancel out:
#
#   per RPC = (count(load with N2 calls) - count(load with N1 calls)) / ((N2 - N1) * connections)
#
#   bench/count.sh callgrind floor            # instructions per RPC, 50 conns x 16 in flight
#   bench/count.sh strace zocket-hyper --in-flight 1
#   bench/count.sh callgrind zocket-warp --calls 200,1000 --connections 50 --in-flight 16
#   bench/count.sh callgrind "/tmp/reference-old --addr 127.0.0.1:0 --adapter hyper"
#   bench/count.sh callgrind zocket-hyper --fanout --calls 20,60   # per delivery: one room
#     of 1000 members, 20 then 60 events (burst); figures per delivery
#
# callgrind: one server process under valgrind; after each load `callgrind_control -d`
# dumps the instructions counted since the previous dump. The dump of the larger load is
# kept in $out (default /tmp/zocket-count) for `callgrind_annotate`.
# CALLGRIND_ARGS adds options, e.g. CALLGRIND_ARGS="--cache-sim=yes --branch-sim=yes"
# for simulated cache misses and mispredicts per function (callgrind_annotate --show=...).
# strace: one server process per load under `strace -c -f`; the summary is read at exit.
# The load generator runs pinned to core 1, the server to core 0. Loopback only.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
tool="$1"
server="$2"
shift 2
conns=50
inflight=16
calls="200,600"
fanout=0
out="${COUNT_OUT:-/tmp/zocket-count}"
while [ $# -gt 0 ]; do
  case "$1" in
    --connections) conns="$2"; shift ;;
    --in-flight) inflight="$2"; shift ;;
    --calls) calls="$2"; shift ;;
    --fanout) fanout=1 ;;
    --out) out="$2"; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
n1="${calls%,*}"
n2="${calls#*,}"
bin="$here/target/release"
ref="$root/target/release/reference"
case "$server" in
  floor) cmd="$bin/floor --addr 127.0.0.1:0" ;;
  floor-fws) cmd="$bin/floor-fws --addr 127.0.0.1:0" ;;
  zocket-hyper) cmd="$ref --addr 127.0.0.1:0 --adapter hyper" ;;
  zocket-warp) cmd="$ref --addr 127.0.0.1:0 --adapter warp" ;;
  *) cmd="$server" ;;
esac
mkdir -p "$out"
tag="$(echo "$server" | tr -c 'A-Za-z0-9_-' '_' | cut -c1-40)"
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

# Start "$@" pinned to core 0; sets pid and addr.
start() {
  local log="$out/$tag.stdout"
  : > "$log"
  # shellcheck disable=SC2068
  RUST_LOG=warn taskset -c 0 "$@" > "$log" 2> "$out/$tag.stderr" &
  pid=$!
  for _ in $(seq 1 600); do
    addr="$(sed -n 's#^listening on ws://\([^/]*\)/.*#\1#p' "$log" | head -1)"
    [ -n "$addr" ] && return 0
    sleep 0.1
  done
  echo "server did not start: $(cat "$out/$tag.stderr")" >&2
  exit 1
}

load() {
  if [ "$fanout" = 1 ]; then
    taskset -c 1 "$bin/loadgen" --addr "$addr" fanout --members 1000 --messages "$1" \
      --quiet 20 > "$out/$tag.load.$1.json"
  else
    taskset -c 1 "$bin/loadgen" --addr "$addr" rpc --connections "$conns" \
      --in-flight "$inflight" --calls "$1" > "$out/$tag.load.$1.json"
  fi
}

rpcs=$(( (n2 - n1) * conns ))
unit=RPC
[ "$fanout" = 1 ] && unit=delivery && rpcs=$(( (n2 - n1) * 1000 )) && conns=1000 && inflight="fan-out"
case "$tool" in
  callgrind)
    # shellcheck disable=SC2086
    start valgrind --tool=callgrind ${CALLGRIND_ARGS:-} --compress-strings=no --callgrind-out-file="$out/$tag.cg.%p" $cmd
    # valgrind's own pid is the server's.
    load "$n1"
    callgrind_control -d "$pid" > /dev/null
    load "$n2"
    callgrind_control -d "$pid" > /dev/null
    f1="$(ls "$out/$tag.cg.$pid".* | sort -t. -k4 -n | sed -n 1p)"
    f2="$(ls "$out/$tag.cg.$pid".* | sort -t. -k4 -n | sed -n 2p)"
    ir() { sed -n 's/^summary: *\([0-9]*\).*/\1/p; s/^totals: *\([0-9]*\).*/\1/p' "$1" | head -1; }
    i1=$(ir "$f1"); i2=$(ir "$f2")
    cleanup
    cp "$f2" "$out/$tag.callgrind.out"
    cp "$f1" "$out/$tag.callgrind.small.out"
    rm -f "$out/$tag.cg.$pid"*
    echo "$server: $(( (i2 - i1) / rpcs )) instructions per $unit ($conns x $inflight, calls $n1 -> $n2 per connection; $i1 -> $i2 Ir); profile: $out/$tag.callgrind.out (the smaller load: $tag.callgrind.small.out)"
    ;;
  strace)
    total() { awk '$NF == "total" { print $4 }' "$1"; }
    declare -A got
    for n in "$n1" "$n2"; do
      # shellcheck disable=SC2086
      start strace -c -f -o "$out/$tag.strace.$n" $cmd
      load "$n"
      # Stop the traced server (strace's child), so that strace writes its summary.
      kill -TERM "$(pgrep -P "$pid" | head -1)" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      pid=""
      got[$n]=$(total "$out/$tag.strace.$n")
    done
    echo "$server: $(echo "scale=3; (${got[$n2]} - ${got[$n1]}) / $rpcs" | bc) syscalls per $unit ($conns x $inflight, calls $n1 -> $n2 per connection; ${got[$n1]} -> ${got[$n2]})"
    echo "by syscall (load of $n2 calls per connection): $out/$tag.strace.$n2"
    ;;
  *) echo "tool: callgrind or strace" >&2; exit 2 ;;
esac
