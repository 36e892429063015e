#!/usr/bin/env bash
# `make up` / `make down`: a local wasmCloud 1.9 lattice on loopback, from our own builds:
# nats-server (manifests/nats/core.conf: JetStream, 127.0.0.1 only), wadm and one host with
# the edge label set. PIDs and logs go to build/run/; `down` stops exactly those PIDs.
set -euo pipefail
cd "$(dirname "$0")/.."
# (EDGECELL_LATTICE_RUN, EDGECELL_NATS_LEAF_PORT and EDGECELL_NATS_HTTP_PORT let a test run
# its own lattice beside a user's)
RUN=${EDGECELL_LATTICE_RUN:-build/run}
case "$RUN" in /*) RUN_ABS=$RUN ;; *) RUN_ABS=$PWD/$RUN ;; esac
BIN=${EDGECELL_LATTICE_BIN:?run through make}
NATS=${EDGECELL_NATS_SERVER:-tools/bin/nats-server}
PORT=${EDGECELL_NATS_PORT:-4222}
URL="nats://127.0.0.1:${PORT}"

alive() { [[ -f "$RUN/$1.pid" ]] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

start() { # name, command...
    local name=$1; shift
    if alive "$name"; then echo "$name already running (pid $(cat "$RUN/$name.pid"))"; return; fi
    "$@" >"$RUN/$name.log" 2>&1 &
    echo $! >"$RUN/$name.pid"
    echo "$name started (pid $!, log $RUN/$name.log)"
}

stop() { # name
    local name=$1
    if ! alive "$name"; then rm -f "$RUN/$name.pid"; return; fi
    local pid; pid=$(cat "$RUN/$name.pid")
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    rm -f "$RUN/$name.pid"
    echo "$name stopped (pid $pid)"
}

case "${1:-}" in
up)
    mkdir -p "$RUN/js" "$RUN/tmp"
    # core.conf with its JetStream store in our run dir (nats-server refuses `-sd` beside a
    # store_dir in the file: "Duplicate 'store_dir' configuration")
    case "$RUN_ABS" in *[\|\&\\\"]*|*$'\n'*) echo "run dir $RUN_ABS: no | & \\ \" or line breaks, please" >&2; exit 2 ;; esac
    leaf=${EDGECELL_NATS_LEAF_PORT:-7422}
    monitor=${EDGECELL_NATS_HTTP_PORT:-8222}
    sed -e "s|^\([[:space:]]*store_dir:\).*|\1 \"$RUN_ABS/js\"|" \
        -e "s|127.0.0.1:7422|127.0.0.1:$leaf|" \
        -e "s|^http: 127.0.0.1:8222|http: 127.0.0.1:$monitor|" \
        manifests/nats/core.conf >"$RUN/core.conf"
    # each edit must have landed (core.conf reworded would otherwise start on the defaults)
    for want in "store_dir: \"$RUN_ABS/js\"" "127.0.0.1:$leaf" "http: 127.0.0.1:$monitor"; do
        grep -qF "$want" "$RUN/core.conf" || { echo "manifests/nats/core.conf: could not set \`$want\`" >&2; exit 2; }
    done
    start nats "$NATS" -c "$RUN/core.conf" -p "$PORT"
    up=0
    for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && { up=1; break; }; sleep 0.1; done
    if [ "$up" != 1 ]; then
        echo "nats-server is not listening on 127.0.0.1:$PORT; its log:" >&2
        tail -5 "$RUN/nats.log" >&2
        stop nats
        exit 1
    fi
    start wadm "$BIN/edgecell-lattice-wadm" --nats-server "127.0.0.1:$PORT"
    labels=()
    while read -r l; do [[ -n "$l" && "$l" != \#* ]] && labels+=(--label "$l"); done < <(grep -v '^\s*#' manifests/hosts/edge.env 2>/dev/null || printf 'tier=edge\nregion=local\n')
    # EDGECELL_OTLP_ENDPOINT=http://127.0.0.1:4318/v1/traces: the host and its providers export spans
    otlp=()
    if [ -n "${EDGECELL_OTLP_ENDPOINT:-}" ]; then otlp=(--otlp-endpoint "$EDGECELL_OTLP_ENDPOINT"); fi
    TMPDIR="$RUN_ABS/tmp" start host "$BIN/edgecell-lattice-host" --nats-url "$URL" --allow-file-load "${labels[@]}" "${otlp[@]}"
    echo "lattice up on $URL; next: make deploy (then make down)"
    ;;
down)
    if alive wadm && alive host; then
        "$BIN/edgecell-lattice" undeploy edgecell --nats "$URL" 2>/dev/null || true
    fi
    stop host; stop wadm; stop nats
    ;;
*) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
