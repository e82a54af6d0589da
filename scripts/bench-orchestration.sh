#!/usr/bin/env bash
# Orchestration benchmark: the time bench-master takes beyond one 2-s cycle (deploy, start,
# collect, report) with many nodes, against that of 1 node. Two cases, each at most twice the
# 1-node figure:
#
#   A (issue 5): 32 virtual nodes through one real sshd on loopback;
#   B (issue 16): 128 nodes: 8 hosts, each its own stock sshd on its own loopback address
#     (127.0.0.2 ... 127.0.0.9) with its own generated host key, 16 virtual nodes each; no node
#     may be lost and every node must start within 100 ms of the planned instant.
#
# Every sshd keeps sshd's default connection limits (MaxStartups 10:30:100, MaxSessions 10).
# Each host is logged into as its own user, as 8 real machines have 8 homes: bmhost1 ...
# bmhost8 for case B's hosts, bmhost0 for the 1-node run and case A (so that both sides pay the
# same kind of login), each created here when missing (useradd -m, bash), with its own
# authorized_keys and the node workspace (-x, relative) in its home. Sharing root's home would
# make the hosts wait for each other on whatever their login shell rc locks there.
# A built-in target serves the load. After a warm-up run (the first run uploads bench-node
# into the node workspace) the 1-node run and the cases alternate ROUNDS times; the medians
# are compared. Each run prints its overhead, the master's CPU seconds (user + system) and peak
# RSS, and its start figures: the latest node's start after the planned instant (from run.json:
# the instant the master planned, and each node's first user as its result says) and the
# spread between the nodes. Prints the CPU model, kernel and load average; exits 1 when a
# target is missed.
#
#   scripts/bench-orchestration.sh [ROUNDS] [NODES] [HOSTS]   (default: 5 rounds, 32 nodes)
#
# HOSTS=one (default) puts case A's nodes on one host (`node-a` listed NODES times: one
# connection, one remote command per stage); HOSTS=distinct gives each its own alias of the
# same sshd (`vnode-0`...: NODES connections through sshd's MaxStartups), for comparison.
# WIDE_HOSTS (8) and PER_HOST (16) shape case B; CASES=a or CASES=b runs one case only;
# NO_BUILD=1 reuses the release binaries already built (a run the master fails is kept in
# /tmp/bm-orchestration-failed.*). BENCH_MASTER_TRACE=1 with KEEP=1
# keeps the master's timestamped stages in its logs; WRAP="perf record -g -o FILE --" runs the
# master under a profiler (or anything that takes a command); MASTER=PATH runs another
# bench-master build (before and after a change, in one session), with NODE_WS=NAME its own
# node workspace so that each build runs the bench-node beside it (same version, no upload).
# THINK=S sets the test's pause between two executions by a user (sleep_time; default 0:
# each node's one user loops at once, so case B's 128 users keep both cores busy all cycle).
# KEX=ALGORITHMS puts `KexAlgorithms ALGORITHMS` in the client's ssh config, as a user with a
# large fleet may (docs/PERFORMANCE.md: OpenSSH's default, sntrup761x25519-sha512, costs the
# client ten times the CPU of curve25519-sha256); the floor's plain ssh uses the same config.
# NODE_TMPFS=1 mounts a tmpfs on each host user's node workspace (unmounted at the end), to
# tell the file system's share: on a journal-less ext4 that has seen many files deleted, each
# new inode costs 0.1-0.7 ms (ext4's recently_deleted scan), and a node makes four (its
# directory, node.toml, result.xml.tmp, progress.jsonl).
#
# Needs sshd (Debian openssh-server), ssh-keygen, jq and GNU time; run it as root (it adds the
# users).
set -euo pipefail
cd "$(dirname "$0")/.."

rounds="${1:-5}"
nodes="${2:-32}"
hosts="${3:-one}"
wide_hosts="${WIDE_HOSTS:-8}"
per_host="${PER_HOST:-16}"
cases="${CASES:-ab}"
cycle=2
sshd=/usr/sbin/sshd
[ -x "$sshd" ] || { echo "$sshd is missing: apt-get install -y openssh-server" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time is missing: apt-get install -y time" >&2; exit 2; }
command -v jq >/dev/null || { echo "jq is missing: apt-get install -y jq" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "run this as root: it adds the users bmhost0..bmhost$wide_hosts" >&2; exit 2; }

[ -n "${NO_BUILD:-}" ] || cargo build --release --quiet --bin bench-master --bin bench-node
master="${MASTER:-$PWD/target/release/bench-master}"
node="$PWD/target/release/bench-node"

work=$(mktemp -d /tmp/bm-orchestration.XXXXXX)
# The node workspace, relative: in the home of the user each host logs in as.
node_ws="${NODE_WS:-bench-orchestration-ws}"
pids=()
homes=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for h in "${homes[@]}"; do
    [[ -z ${NODE_TMPFS:-} ]] || umount -l "$h/$node_ws" 2>/dev/null || true
    rm -rf "${h:?}/$node_ws"
  done
  [ -n "${KEEP:-}" ] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT

# A port on address $1 the kernel would give now: no socket uses it, not even an outgoing
# connection's local port (a port chosen at random in the ephemeral range can be, after the
# load runs of scripts/bench.sh, and sshd then fails to bind it).
free_port() {
  python3 -c 'import socket, sys; s = socket.socket(); s.bind((sys.argv[1], 0)); print(s.getsockname()[1])' "$1"
}

# Waits (at most 10 s) until something accepts on $1:$2; shows log $3 if not.
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return
    sleep 0.1
  done
  echo "nothing listens on $1:$2" >&2
  [ -n "${3:-}" ] && [ -f "$3" ] && tail -5 "$3" >&2
  exit 1
}

# --- sshds with sshd's default connection limits (as tests/sshd.rs starts them) ---
mkdir -p /run/sshd
ssh-keygen -q -t ed25519 -N '' -C bench-orchestration -f "$work/id_ed25519"
: >"$work/known_hosts"
: >"$work/ssh_config"

# Makes user $1 (when missing) and lets the bench key log in as it; prints nothing.
host_user() {
  local user=$1 home
  # No password ('*'), but not a locked account ('!'), which sshd refuses without PAM.
  id "$user" >/dev/null 2>&1 || useradd -m -s /bin/bash -p '*' "$user"
  home=$(getent passwd "$user" | cut -d: -f6)
  homes+=("$home")
  install -d -m 700 -o "$user" -g "$(id -gn "$user")" "$home/.ssh"
  install -m 600 -o "$user" -g "$(id -gn "$user")" "$work/id_ed25519.pub" "$home/.ssh/authorized_keys"
  rm -rf "${home:?}/$node_ws"
  if [[ -n ${NODE_TMPFS:-} ]]; then
    install -d -o "$user" -g "$(id -gn "$user")" "$home/$node_ws"
    mount -t tmpfs -o "mode=755,uid=$(id -u "$user"),gid=$(id -g "$user")" bm-node-ws "$home/$node_ws"
  fi
}

# Starts an sshd named $1 on address $2 with its own host key, known to the client, reached
# by the ssh aliases $3 (a pattern list) logging in as user $4.
start_sshd() {
  local name=$1 addr=$2 aliases=$3 user=$4 dir="$work/$1" port
  host_user "$user"
  mkdir -p "$dir"
  ssh-keygen -q -t ed25519 -N '' -C "bench-orchestration-$name" -f "$dir/host_key"
  port=$(free_port "$addr")
  cat >"$dir/sshd_config" <<EOF
Port $port
ListenAddress $addr
HostKey $dir/host_key
AuthorizedKeysFile .ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
PidFile none
LogLevel INFO
EOF
  echo "[$addr]:$port $(cut -d' ' -f1,2 "$dir/host_key.pub")" >>"$work/known_hosts"
  cat >>"$work/ssh_config" <<EOF
Host $aliases
  HostName $addr
  Port $port
  User $user
  IdentityFile $work/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $work/known_hosts
  GlobalKnownHostsFile /dev/null
  LogLevel ERROR
EOF
  [[ -z ${KEX:-} ]] || echo "  KexAlgorithms $KEX" >>"$work/ssh_config"
  "$sshd" -D -f "$dir/sshd_config" -E "$dir/sshd.log" </dev/null &
  pids+=($!)
  wait_port "$addr" "$port" "$dir/sshd.log"
  echo "  sshd $name on $addr:$port, user $user"
}

echo "sshds (default MaxStartups/MaxSessions, each its own host key):"
start_sshd a 127.0.0.1 "node-a vnode-*" bmhost0
if [[ $cases == *b* ]]; then
  for h in $(seq "$wide_hosts"); do
    start_sshd "host-$h" "127.0.0.$((h + 1))" "host-$h" "bmhost$h"
  done
fi

# --- the target and the test ---
tport=$(free_port 127.0.0.1)
"$node" target --listen "127.0.0.1:$tport" >/dev/null 2>&1 &
pids+=($!)
wait_port 127.0.0.1 "$tport"
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
sleep_time = ${THINK:-0}

[[step]]
name = "home"
path = "/"
EOF
echo node-a >"$work/nodes-1"
case "$hosts" in
  one) for _ in $(seq "$nodes"); do echo node-a; done ;;
  distinct) for i in $(seq "$nodes"); do echo "vnode-$i"; done ;;
  *) echo "HOSTS is one or distinct, not $hosts" >&2; exit 2 ;;
esac >"$work/nodes-a"
wide=$((wide_hosts * per_host))
for h in $(seq "$wide_hosts"); do
  for _ in $(seq "$per_host"); do echo "host-$h"; done
done >"$work/nodes-b"

# Runs the master on nodes file $1 (of $2 nodes); prints one line: overhead beyond the cycle
# (s), master CPU (s), peak RSS (MB), latest start after the planned instant (ms), spread of
# the starts (ms), nodes with a result, load average. Fails when the master does.
measure() {
  local log times t0 t1 run
  log=$(mktemp "$work/master-$1.XXXXXX")
  times="$log.time"
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086
  if ! /usr/bin/time -f '%U %S %M' -o "$times" ${WRAP:-} "$master" -w "$work/ws" -x "$node_ws" \
    --ssh-config "$work/ssh_config" -n "$1" "$work/$1" "$work/test.toml" >"$log" 2>&1 </dev/null; then
    echo "bench-master failed on $1:" >&2
    cat "$log" >&2
    # The failed run outlives the clean-up: its nodes' logs and results tell what happened.
    local kept
    kept=$(mktemp -d /tmp/bm-orchestration-failed.XXXXXX)
    cp -r "$(ls -d "$work/ws/$1"/*/ | sort | tail -1)" "$log" "$kept/" 2>/dev/null || true
    echo "the failed run is kept in $kept" >&2
    exit 1
  fi
  t1=$(date +%s.%N)
  grep -E " in [0-9.]+ ?m?s|skew|failed|missing" "$log" | sed 's/^/      /' >&2 || true
  run=$(ls -d "$work/ws/$1"/*/ | sort | tail -1)
  local start
  start=$(jq -r '[.planned_start_unix_ms as $p | .nodes[] | select(.started_unix_ms != null)
      | .started_unix_ms - $p] | "\(max // "nan") \(if length > 0 then max - min else "nan" end) \(length)"' \
    "$run/run.json")
  awk -v a="$t0" -v b="$t1" -v c="$cycle" -v t="$(cat "$times")" -v s="$start" \
    -v l="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN {
      split(t, x, " "); split(s, y, " ")
      printf "%.2f %.2f %.0f %s %s %s %s\n", b - a - c, x[1] + x[2], x[3] / 1024, y[1], y[2], y[3], l
    }'
}

# The floor of case B: plain ssh connecting to the hosts $@ at once and running `true`, each a
# new connection and one remote command as bench-master pays per host; prints the seconds.
ssh_floor() {
  local t0 t1 h started=()
  t0=$(date +%s.%N)
  for h in "$@"; do
    ssh -F "$work/ssh_config" -o BatchMode=yes -o ControlMaster=no -o ControlPath=none "$h" true &
    started+=($!)
  done
  # Only these: a bare `wait` would wait for the sshds too.
  wait "${started[@]}"
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f\n", b - a }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# Column $1 of the lines in file $2, one per line.
column() { awk -v c="$1" '{ print $c }' "$2"; }
show() {
  printf '    %-34s %s\n' "$1" "$(column "$2" "$3" | tr '\n' ' ')(median $(column "$2" "$3" | median))"
}

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores," \
  "kernel $(uname -r); load average $(cut -d' ' -f1-3 /proc/loadavg) (other load skews the figures)"
[[ -z ${KEX:-} ]] || echo "ssh client config: KexAlgorithms $KEX"
echo "target on 127.0.0.1:$tport; warm-up runs (upload bench-node into each user's node workspace)..."
measure nodes-1 1 >/dev/null
[[ $cases != *b* ]] || measure nodes-b "$wide" >/dev/null
: >"$work/res-one"
: >"$work/res-a"
: >"$work/res-b"
: >"$work/floor-1"
: >"$work/floor-b"
for r in $(seq "$rounds"); do
  echo "round $r: 1 node" >&2
  measure nodes-1 1 >>"$work/res-one"
  if [[ $cases == *a* ]]; then
    echo "round $r: case A, $nodes nodes" >&2
    measure nodes-a "$nodes" >>"$work/res-a"
  fi
  if [[ $cases == *b* ]]; then
    echo "round $r: case B, $wide nodes on $wide_hosts sshds" >&2
    measure nodes-b "$wide" >>"$work/res-b"
    ssh_floor host-1 >>"$work/floor-1"
    # shellcheck disable=SC2046
    ssh_floor $(seq -f 'host-%g' "$wide_hosts") >>"$work/floor-b"
  fi
done

report() {
  local title=$1 file=$2
  echo "  $title"
  show "beyond the cycle (s):" 1 "$file"
  show "master CPU, user + system (s):" 2 "$file"
  show "master peak RSS (MB):" 3 "$file"
  show "latest start after plan (ms):" 4 "$file"
  show "spread of the starts (ms):" 5 "$file"
  show "nodes with a result:" 6 "$file"
  show "load average (1 min):" 7 "$file"
}
echo "time beyond the ${cycle}-s cycle (deploy, start, collect, report), release build, $rounds rounds:"
report "1 node" "$work/res-one"
m1=$(column 1 "$work/res-one" | median)
missed=()
if [[ $cases == *a* ]]; then
  report "A: $nodes nodes ($hosts host$([ "$hosts" = one ] || echo s) on one sshd)" "$work/res-a"
  ma=$(column 1 "$work/res-a" | median)
  ra=$(awk -v a="$m1" -v b="$ma" 'BEGIN { printf "%.2f", b / a }')
  echo "  A ratio: $ra (target: at most 2)"
  awk -v r="$ra" 'BEGIN { exit !(r <= 2) }' || missed+=("A ratio $ra")
fi
if [[ $cases == *b* ]]; then
  report "B: $wide nodes ($wide_hosts sshds x $per_host nodes)" "$work/res-b"
  mb=$(column 1 "$work/res-b" | median)
  rb=$(awk -v a="$m1" -v b="$mb" 'BEGIN { printf "%.2f", b / a }')
  late=$(column 4 "$work/res-b" | median)
  echo "  B ratio: $rb (target: at most 2); latest start $late ms after plan (target: under 100)"
  f1=$(median <"$work/floor-1")
  fb=$(median <"$work/floor-b")
  echo "  floor: plain ssh, connect and run true: 1 host $(tr '\n' ' ' <"$work/floor-1")s" \
    "(median $f1), $wide_hosts hosts at once $(tr '\n' ' ' <"$work/floor-b")s (median $fb):" \
    "ratio $(awk -v a="$f1" -v b="$fb" 'BEGIN { printf "%.2f", b / a }')"
  awk -v r="$rb" 'BEGIN { exit !(r <= 2) }' || missed+=("B ratio $rb")
  awk -v l="$late" 'BEGIN { exit !(l == l + 0 && l < 100) }' || missed+=("B start $late ms late")
  lost=$(awk -v n="$wide" '$6 != n' "$work/res-b" | wc -l)
  [ "$lost" -eq 0 ] || missed+=("B lost nodes in $lost rounds")
fi
if [ "${#missed[@]}" -eq 0 ]; then
  echo "within target"
else
  echo "TARGET MISSED: ${missed[*]}"
  exit 1
fi
