#!/usr/bin/env bash
# The benchmark run: builds release, runs every server through every scenario,
# interleaved (the server order rotates per repetition), a fresh server process per
# scenario, server and load generator pinned to different cores, N repetitions; then
# writes the raw results (JSON lines), a Markdown table with medians and ratios to the
# floor of the same repetition, and SVG plots.
#
#   bench/run.sh                 # full run: 3 repetitions, 5 s per RPC scenario, 10 000 idle
#   bench/run.sh --quick         # 1 repetition, short scenarios (a smoke test of the suite)
#   bench/run.sh --servers "floor zocket-hyper" --scenarios "rpc1 burst" --reps 3
#
# Options: --quick, --reps N, --servers "LIST", --scenarios "LIST", --out DIR,
# --no-build, --server-core N, --load-core N, --duration S (RPC scenarios), --rt
# (SCHED_FIFO priority 1 via chrt for server and generator: on a machine busy with other
# work this is what makes the figures mean something; the kernel's RT throttling still
# leaves 5% of each core to everything else, and every scenario is bounded), --nice N (default -10 when run as root:
# the machine may be shared with builds; a higher priority keeps their noise out of the
# figures, and every figure is also given as a ratio to the floor of the same repetition).
# Servers: floor zocket-hyper zocket-warp socketio jsonrpsee axum, floor-fws (the floor on
# fastwebsockets, RPC and idle scenarios only; not in the default list), and with
# --base-reference PATH (another build of the reference binary, e.g. of an older commit)
# base-zocket-hyper base-zocket-warp: before/after in the same run. --zocket-args "ARGS":
# the arguments of every Zocket server (default "--message-rate off": the default limit
# of 10 000 messages/s per connection closes connections of the 50×16 scenario once a
# server answers more than 500 000 calls/s; "" measures with the default limit).
# Scenarios: rpc1 (50×1) rpc16 (50×16) burst (1000 members × 200) paced (200/s) idle
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
quick=0
reps=3
servers="floor zocket-hyper zocket-warp socketio jsonrpsee axum"
scenarios="rpc1 rpc16 burst paced idle"
out="$here/results/$(date -u +%Y%m%dT%H%M%SZ)"
build=1
server_core=0
load_core=1
if [ "$(id -u)" = 0 ]; then nice_level=-10; else nice_level=0; fi
rt=0
duration_opt=""
base_ref=""
# The floor and the peers have no per-connection message rate limit; Zocket's default
# (10 000 messages/s) would close the connections of the 50×16 scenario, which asks for
# more: lifted unless --zocket-args says otherwise (--zocket-args "" keeps the default).
zocket_args="--message-rate off"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; reps=1 ;;
    --reps) reps="$2"; shift ;;
    --servers) servers="$2"; shift ;;
    --scenarios) scenarios="$2"; shift ;;
    --out) out="$2"; shift ;;
    --no-build) build=0 ;;
    --server-core) server_core="$2"; shift ;;
    --load-core) load_core="$2"; shift ;;
    --nice) nice_level="$2"; shift ;;
    --rt) rt=1 ;;
    --base-reference) base_ref="$2"; shift ;;
    --zocket-args) zocket_args="$2"; shift ;;
    --duration) duration_opt="$2"; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

if [ "$quick" = 1 ]; then
  duration=2; warmup=0.5; idle_n=2000; paced_n=200
else
  duration=5; warmup=1; idle_n=10000; paced_n=600
fi
[ -n "$duration_opt" ] && duration="$duration_opt"
if [ "$rt" = 1 ]; then
  prio=(chrt -f 1)
else
  prio=(nice -n "$nice_level")
fi

if [ "$build" = 1 ]; then
  (cd "$root" && cargo build --release -p zocket-examples --bin reference)
  (cd "$here" && cargo build --release --bins)
fi
ref="$root/target/release/reference"
bin="$here/target/release"

# 10 000 sockets in each process (server, load generator), plus slack.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((idle_n + 1000)) ]; then
  echo "warning: ulimit -n is $(ulimit -n); the idle scenario needs about $((idle_n + 1000)) per process" >&2
fi

mkdir -p "$out"
raw="$out/results.jsonl"
: > "$raw"
logs="$out/logs"
mkdir -p "$logs"
{
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "kernel: $(uname -r)"
  echo "cpus: $(nproc); server core $server_core, load generator core $load_core"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "reps: $reps; quick: $quick; scheduling: ${prio[*]}; RPC duration: $duration s"
} > "$out/machine.txt"

proto_of() {
  case "$1" in
    socketio) echo socketio ;;
    jsonrpsee) echo jsonrpc ;;
    *) echo zocket ;;
  esac
}

server_cmd() {
  case "$1" in
    floor) echo "$bin/floor --addr 127.0.0.1:0" ;;
    floor-fws) echo "$bin/floor-fws --addr 127.0.0.1:0" ;;
    zocket-hyper) echo "$ref --addr 127.0.0.1:0 --adapter hyper $zocket_args" ;;
    zocket-warp) echo "$ref --addr 127.0.0.1:0 --adapter warp $zocket_args" ;;
    base-zocket-hyper) echo "$base_ref --addr 127.0.0.1:0 --adapter hyper $zocket_args" ;;
    base-zocket-warp) echo "$base_ref --addr 127.0.0.1:0 --adapter warp $zocket_args" ;;
    socketio) echo "$bin/peer-socketio --addr 127.0.0.1:0" ;;
    jsonrpsee) echo "$bin/peer-jsonrpsee --addr 127.0.0.1:0" ;;
    axum) echo "$bin/peer-axum --addr 127.0.0.1:0" ;;
    *) echo "unknown server $1" >&2; return 1 ;;
  esac
}

scenario_args() {
  case "$1" in
    rpc1) echo "rpc --connections 50 --in-flight 1 --duration $duration --warmup $warmup" ;;
    rpc16) echo "rpc --connections 50 --in-flight 16 --duration $duration --warmup $warmup" ;;
    burst) echo "fanout --members 1000 --messages 200" ;;
    paced) echo "fanout --members 1000 --messages $paced_n --rate 200" ;;
    idle) echo "idle --connections $idle_n" ;;
    *) echo "unknown scenario $1" >&2; return 1 ;;
  esac
}

server_pid=""
stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}
trap stop_server EXIT

# Start a server pinned to the server core; sets server_pid and server_addr.
start_server() {
  local name="$1" tag="$2" fifo line
  fifo="$logs/$tag.stdout"
  : > "$fifo"
  # shellcheck disable=SC2046
  RUST_LOG=error "${prio[@]}" taskset -c "$server_core" $(server_cmd "$name") > "$fifo" 2> "$logs/$tag.stderr" &
  server_pid=$!
  for _ in $(seq 1 300); do
    line="$(head -n1 "$fifo" 2>/dev/null || true)"
    case "$line" in
      "listening on ws://"*) server_addr="${line#listening on ws://}"; server_addr="${server_addr%/}"; return 0 ;;
    esac
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "server $name did not start (see $logs/$tag.stderr)" >&2
  return 1
}

read -r -a server_list <<< "$servers"
n_servers=${#server_list[@]}
for rep in $(seq 1 "$reps"); do
  for scenario in $scenarios; do
    for i in $(seq 0 $((n_servers - 1))); do
      # Rotate the order each repetition so no server always runs first or last.
      name="${server_list[$(( (i + rep - 1) % n_servers ))]}"
      tag="$scenario-$name-$rep"
      # The fastwebsockets floor serves the RPC and idle scenarios only (no rooms).
      case "$name:$scenario" in floor-fws:burst|floor-fws:paced) continue ;; esac
      echo "== rep $rep/$reps  $scenario  $name" >&2
      if ! start_server "$name" "$tag"; then
        printf '{"scenario":"%s","server":"%s","rep":%s,"error":"server did not start"}\n' \
          "$(scenario_args "$scenario" | sed 's/^rpc.*in-flight \([0-9]*\).*/rpc_50x\1/;s/^fanout.*rate.*/fanout_paced/;s/^fanout.*/fanout_burst/;s/^idle.*/idle/')" \
          "$name" "$rep" >> "$raw"
        stop_server
        continue
      fi
      # shellcheck disable=SC2046
      if ! result="$(timeout 180 "${prio[@]}" taskset -c "$load_core" "$bin/loadgen" --addr "$server_addr" \
          --proto "$(proto_of "$name")" --pid "$server_pid" --server "$name" --rep "$rep" \
          $(scenario_args "$scenario") 2> "$logs/$tag.loadgen.stderr")"; then
        result="$(printf '{"scenario":"%s","server":"%s","rep":%s,"error":"load generator failed: %s"}' \
          "$(scenario_args "$scenario" | sed 's/^rpc.*in-flight \([0-9]*\).*/rpc_50x\1/;s/^fanout.*rate.*/fanout_paced/;s/^fanout.*/fanout_burst/;s/^idle.*/idle/')" \
          "$name" "$rep" "$(tail -n1 "$logs/$tag.loadgen.stderr" | tr -d '"\\' | cut -c1-200)")"
      fi
      echo "$result" >> "$raw"
      echo "$result" >&2
      stop_server
    done
  done
done

"$bin/report" --input "$raw" --out-dir "$out"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/machine.txt"
echo "results in $out" >&2
