#!/bin/sh
# A shell load generator for bench-node's [generator]: BENCH_USERS loops of curl GETs against
# BENCH_URL until SIGTERM, one JSON line per request on stdout.
set -u
get() {
    while :; do
        # curl prints the status, the time in s and the bytes; its exit status says why not.
        if out=$(curl -s -o /dev/null --max-time 30 -w '%{http_code} %{time_total} %{size_download}' "${BENCH_URL}?bytes=${BYTES:-100}"); then
            set -- $out
            ms=$(awk "BEGIN { print $2 * 1000 }")
            if [ "$1" -lt 300 ]; then
                printf '{"step":"get","ms":%s,"ok":true,"bytes":%s}\n' "$ms" "$3"
            else
                printf '{"step":"get","ms":%s,"bytes":%s,"error":"HTTP %s","kind":"status"}\n' "$ms" "$3" "$1"
            fi
        else
            printf '{"step":"get","ok":false,"error":"curl exit status %s"}\n' "$?"
        fi
    done
}
trap 'exit 0' TERM
for _ in $(seq "${BENCH_USERS:-1}"); do get & done
wait
