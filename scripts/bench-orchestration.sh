#!/usr/bin/env bash
# Orchestration benchmark (issue 5, target 4): 32 virtual nodes through one real sshd on
# loopback (sshd's default MaxStartups and MaxSessions), one 2-s cycle. The time beyond the
# cycle (deploy, start, collect, report) must be at most twice that of 1 node.
#
# Starts its own sshd on a free 127.0.0.1 port (generated host and user keys, its own config
# keeping sshd's default connection limits, an ssh config mapping the node aliases to it), a
# built-in target on another free port, warms up once (the first run uploads bench-node into
# the node workspace), then alternates 1-node and 32-node runs ROUNDS times and compares the
# medians. Prints every run's overhead and the ratio; exits 1 when the ratio is above 2.
#
#   scripts/bench-orchestration.sh [ROUNDS] [NODES] [HOSTS]   (default: 5 rounds, 32 nodes)
#
# HOSTS=one (default) puts every node on one host (`node-a` listed NODES times: one connection,
# one remote command per stage); HOSTS=distinct gives each node its own alias of the same sshd
# (`vnode-0`...: NODES connections through sshd's MaxStartups), for comparison.
#
# Needs sshd (Debian openssh-server) and ssh-keygen; run it as the user the nodes log in as.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds="${1:-5}"
nodes="${2:-32}"
hosts="${3:-one}"
cycle=2
sshd=/usr/sbin/sshd
[ -x "$sshd" ] || { echo "$sshd is missing: apt-get install -y openssh-server" >&2; exit 2; }

cargo build --release --quiet --bin bench-master --bin bench-node
master="$PWD/target/release/bench-master"
node="$PWD/target/release/bench-node"

work=$(mktemp -d /tmp/bm-orchestration.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT

# A loopback port the kernel would give now: no socket uses it, not even an outgoing
# connection's local port (a port chosen at random in the ephemeral range can be, after the
# load runs of scripts/bench.sh, and sshd then fails to bind it).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits (at most 10 s) until something accepts on 127.0.0.1:$1; shows log $2 if not.
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1" >&2
  [ -n "${2:-}" ] && [ -f "$2" ] && tail -5 "$2" >&2
  exit 1
}

# --- sshd with sshd's default connection limits (as tests/sshd.rs starts it) ---
mkdir -p /run/sshd
ssh-keygen -q -t ed25519 -N '' -C bench-orchestration -f "$work/host_key"
ssh-keygen -q -t ed25519 -N '' -C bench-orchestration -f "$work/id_ed25519"
cp "$work/id_ed25519.pub" "$work/authorized_keys"
port=$(free_port)
cat >"$work/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $work/host_key
AuthorizedKeysFile $work/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
PidFile none
LogLevel INFO
EOF
echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$work/host_key.pub")" >"$work/known_hosts"
cat >"$work/ssh_config" <<EOF
Host node-a vnode-*
  HostName 127.0.0.1
  Port $port
  User $(id -un)
  IdentityFile $work/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $work/known_hosts
  GlobalKnownHostsFile /dev/null
  LogLevel ERROR
EOF
"$sshd" -D -f "$work/sshd_config" -E "$work/sshd.log" </dev/null &
pids+=($!)
wait_port "$port" "$work/sshd.log"

# --- the target and the test ---
tport=$(free_port)
"$node" target --listen "127.0.0.1:$tport" >/dev/null 2>&1 &
pids+=($!)
wait_port "$tport"
cat >"$work/test.toml" <<EOF
[test]
name = "orchestration"
url = "http://127.0.0.1:$tport"

[bench]
cycles = [1]
duration = $cycle
startup_delay = 0
cycle_time = 0
sleep_time_min = 0.01
sleep_time_max = 0.01

[[step]]
name = "home"
path = "/"
EOF
echo node-a >"$work/nodes-1"
case "$hosts" in
  one) for _ in $(seq "$nodes"); do echo node-a; done ;;
  distinct) for i in $(seq "$nodes"); do echo "vnode-$i"; done ;;
  *) echo "HOSTS is one or distinct, not $hosts" >&2; exit 2 ;;
esac >"$work/nodes-$nodes"

# Runs the master on nodes file $1; prints its overhead beyond the cycle, in seconds.
overhead() {
  local log t0 t1
  log=$(mktemp "$work/master-$1.XXXXXX")
  t0=$(date +%s.%N)
  if ! "$master" -w "$work/ws" -x "$work/node-ws" --ssh-config "$work/ssh_config" \
    -n "$1" "$work/$1" "$work/test.toml" >"$log" 2>&1 </dev/null; then
    echo "bench-master failed on $1:" >&2
    cat "$log" >&2
    exit 1
  fi
  t1=$(date +%s.%N)
  grep -E " in [0-9.]+ ?m?s|skew" "$log" | sed 's/^/    /' >&2 || true
  awk -v a="$t0" -v b="$t1" -v c="$cycle" 'BEGIN { printf "%.2f\n", b - a - c }'
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "sshd on 127.0.0.1:$port (default MaxStartups/MaxSessions), target on :$tport"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) (other load skews the figures)"
echo "warm-up run (uploads bench-node into the node workspace)..."
overhead nodes-1 >/dev/null
one=()
many=()
for r in $(seq "$rounds"); do
  echo "round $r: 1 node" >&2
  one+=("$(overhead nodes-1)")
  echo "round $r: $nodes nodes" >&2
  many+=("$(overhead "nodes-$nodes")")
done
m1=$(printf '%s\n' "${one[@]}" | median)
mn=$(printf '%s\n' "${many[@]}" | median)
ratio=$(awk -v a="$m1" -v b="$mn" 'BEGIN { printf "%.2f", b / a }')
echo "time beyond the ${cycle}-s cycle (deploy, start, collect, report), release build:"
echo "  1 node:        ${one[*]} s (median $m1 s)"
echo "  $nodes nodes ($hosts host$([ "$hosts" = one ] || echo s)): ${many[*]} s (median $mn s)"
echo "  ratio: $ratio (target: at most 2)"
awk -v r="$ratio" 'BEGIN { exit !(r <= 2) }' && echo "within target" || {
  echo "TARGET MISSED"
  exit 1
}
