#!/usr/bin/env bash
# User-space instructions per request of bench-node's hot path, counted by callgrind: the
# difference between a short and a long run of one user against one nginx worker, divided by
# the difference of the requests nginx logged. Instruction counts do not depend on how busy
# the machine is, so this figure can be compared across runs where seconds cannot
# (docs/PERFORMANCE.md keeps the history).
#
#   scripts/instructions.sh [SHORT_S] [LONG_S]     (default 3 and 6)
#
# BENCH_NODE=PATH counts that bench-node binary instead of this tree's (an earlier build).
set -euo pipefail
cd "$(dirname "$0")/.."

short="${1:-3}"
long="${2:-6}"
work="$PWD/target/instructions"
[ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null && sleep 0.5
rm -rf "$work" && mkdir -p "$work"
command -v valgrind >/dev/null || { echo "valgrind is needed" >&2; exit 1; }
[ -x /usr/sbin/nginx ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
[ -n "${NO_BUILD:-}${BENCH_NODE:-}" ] || cargo build --release --quiet --bin bench-node
node="${BENCH_NODE:-$PWD/target/release/bench-node}"

# One nginx worker; its access log is the count of requests that reached it.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/nginx.conf" <<EOF
worker_processes 1;
daemon on;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log $work/access.log;
  keepalive_requests 100000000;
  server { listen 127.0.0.1:$port; location / { return 200 "ok\n"; } }
}
EOF
/usr/sbin/nginx -c "$work/nginx.conf" -p "$work"
trap 'kill "$(cat "$work/nginx.pid")" 2>/dev/null' EXIT
sleep 0.3

# Instructions of one callgrind run of `secs` seconds, and the requests nginx logged for it.
measure() { # secs
  cat >"$work/t.toml" <<EOF
[test]
name = "instructions"
url = "http://127.0.0.1:$port"
[bench]
cycles = [1]
duration = $1
startup_delay = 0
[[step]]
name = "root"
path = "/"
EOF
  : >"$work/access.log"
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.$1" "$node" run "$work/t.toml" \
    -o "$work/r.$1.xml" --progress none --workers 1 2>"$work/vg.$1.log"
  ir=$(awk '/^summary:/ {print $2}' "$work/cg.$1")
  requests=$(wc -l <"$work/access.log")
  echo "$ir $requests"
}

read -r ir_s req_s < <(measure "$short")
read -r ir_l req_l < <(measure "$long")
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); kernel: $(uname -r)"
echo "short run (${short} s): $ir_s instructions, $req_s requests"
echo "long run (${long} s): $ir_l instructions, $req_l requests"
if [ "$req_l" -le "$req_s" ]; then
  echo "the long run made no more requests than the short one: no figure" >&2
  exit 1
fi
echo "instructions per request: $(( (ir_l - ir_s) / (req_l - req_s) ))"
