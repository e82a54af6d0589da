#!/usr/bin/env bash
# HTTP/2 throughput of bench-node against h2load (Debian's nghttp2-client), issue 15: the same
# nginx (one worker, http2 on TLS, `return 200`), the same connections and streams per
# connection, alternated; prints each round and the median ratio bench-node / h2load with the
# CPU model, kernel and load average. Target >= 0.8. A benchmark, never a timed test.
#
# Each round also prints both tools' CPU time per request (user + system, µs, by
# /usr/bin/time): on a busy machine the rates say more about the neighbours than the tools,
# the CPU per request much less so.
#
#   scripts/bench-h2.sh [ROUNDS] [SECONDS] [CONNECTIONS] [STREAMS]   (default 3 10 50 10)
#
# BENCH_NODE=PATH measures that bench-node binary (an earlier build) instead of this tree's.
set -uo pipefail
cd "$(dirname "$0")/.."

rounds="${1:-3}"
secs="${2:-10}"
conns="${3:-50}"
streams="${4:-10}"
work="$PWD/target/bench-h2"
[ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null && sleep 0.5
rm -rf "$work" && mkdir -p "$work"

if ! command -v h2load >/dev/null || ! [ -x /usr/sbin/nginx ] || ! [ -x /usr/bin/time ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nghttp2-client nginx-light time >/dev/null
fi
cargo build --release --quiet --bin bench-report || exit 1
[ -n "${BENCH_NODE:-}" ] || cargo build --release --quiet --bin bench-node || exit 1
node="${BENCH_NODE:-$PWD/target/release/bench-node}"
report="$PWD/target/release/bench-report"
ulimit -n "$(ulimit -Hn)"

openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -days 2 \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null || exit 1
port=18443
cat >"$work/nginx.conf" <<CONF
worker_processes 1;
worker_rlimit_nofile 30000;
daemon on;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 20000; }
http {
  access_log off;
  keepalive_timeout 120s;
  keepalive_requests 100000000;
  http2_max_concurrent_streams 256;
  server {
    listen 127.0.0.1:$port ssl http2;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    location / { return 200 "ok\n"; }
  }
}
CONF
/usr/sbin/nginx -c "$work/nginx.conf" -p "$work" || exit 1
trap '[ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null' EXIT
sleep 0.5

cat >"$work/h2.toml" <<TOML
[test]
name = "h2"
url = "https://127.0.0.1:$port"
http = "2"
streams = $streams
[bench]
cycles = [$conns]
duration = $secs
startup_delay = 0
insecure = true
[[step]]
name = "root"
path = "/"
TOML

echo "== HTTP/2 over TLS against nginx (1 worker): $conns connections x $streams streams, ${secs} s, ${rounds} rounds"
echo "   $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, kernel $(uname -r)"
ratios=()
for i in $(seq "$rounds"); do
  load=$(cut -d' ' -f1 /proc/loadavg)
  # One thread each: the server needs the other core.
  /usr/bin/time -o "$work/h2load.time" -f "%U %S" \
    h2load -t1 -c"$conns" -m"$streams" -D"$secs" "https://127.0.0.1:$port/" >"$work/h2load.out" 2>/dev/null
  h=$(awk '/^finished in/ { for (i = 1; i <= NF; i++) if ($(i) == "req/s,") print $(i - 1) }' "$work/h2load.out")
  hn=$(awk '/^requests:/ { print $8 }' "$work/h2load.out")
  /usr/bin/time -o "$work/node.time" -f "%U %S" \
    "$node" run "$work/h2.toml" -o "$work/h2.xml" --progress none --workers 1
  "$report" -o "$work/r" "$work/h2.xml" >/dev/null 2>&1
  # Rate, errors and requests in the window (the CPU of the few outside it is counted too).
  read -r b e bn < <(python3 -c "
import json; c = json.load(open('$work/r/summary.json'))['cycles'][0]['requests']
print(c['per_s'], c['error'], c['total'])")
  cpu() { python3 -c "u, s = open('$1').read().split(); print(round((float(u) + float(s)) * 1e6 / $2, 1))"; }
  r=$(python3 -c "print(round($b / $h, 3))")
  ratios+=("$r")
  printf '   round %d: h2load %8.0f req/s (%s µs CPU/req)   bench-node %8.0f req/s (%s errors, %s µs CPU/req)   ratio %s   (load average %s)\n' \
    "$i" "$h" "$(cpu "$work/h2load.time" "$hn")" "$b" "$e" "$(cpu "$work/node.time" "$bn")" "$r" "$load"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "   median ratio bench-node / h2load: $median (target >= 0.8), load average now $(cut -d' ' -f1-3 /proc/loadavg)"
python3 -c "import sys; sys.exit(0 if $median >= 0.8 else 1)"
