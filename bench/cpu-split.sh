#!/usr/bin/env bash
# User and system CPU time per RPC of one server under `loadgen rpc` (50 connections,
# K calls in flight, 3 s), from /proc/PID/stat (utime, stime; 10 ms ticks), SCHED_FIFO,
# server on core 0 and load generator on core 1 as in run.sh. Loopback only.
#
#   bench/cpu-split.sh "bench/target/release/floor --addr 127.0.0.1:0" 1
#   bench/cpu-split.sh "target/release/reference --addr 127.0.0.1:0 --adapter hyper --message-rate off" 16
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cmd="$1"; k="$2"
log=$(mktemp)
addr=""
RUST_LOG=error chrt -f 1 taskset -c 0 $cmd > $log 2>/dev/null &
pid=$!
for i in $(seq 1 100); do addr=$(sed -n 's#^listening on ws://\([^/]*\)/.*#\1#p' $log); [ -n "$addr" ] && break; sleep 0.1; done
st() { awk '{print $14, $15}' /proc/$pid/stat; }
read u0 s0 < <(st)
out=$(chrt -f 1 taskset -c 1 "$here/target/release/loadgen" --addr $addr rpc --connections 50 --in-flight $k --duration 3 --warmup 0.01)
read u1 s1 < <(st)
kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
calls=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["calls"])')
echo "$cmd x$k: calls $calls user $(( (u1-u0)*10000000/calls )) ns/RPC sys $(( (s1-s0)*10000000/calls )) ns/RPC"
rm -f $log
