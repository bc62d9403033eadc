#!/usr/bin/env bash
# Starts or stops a moto server (an AWS API emulator) on 127.0.0.1.
# Usage: infra/moto.sh start|stop [PORT]   (default port 5055)
set -euo pipefail
action="${1:-start}"
port="${2:-5055}"
pid_file="${TMPDIR:-/tmp}/dsync-moto-$port.pid"
log_file="${TMPDIR:-/tmp}/dsync-moto-$port.log"

case "$action" in
start)
    if ! command -v moto_server >/dev/null; then
        echo "moto_server not found: run pip install 'moto[server]'" >&2
        exit 1
    fi
    moto_server -H 127.0.0.1 -p "$port" >"$log_file" 2>&1 &
    echo $! >"$pid_file"
    for _ in $(seq 1 100); do
        if curl -fsS "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1; then
            echo "moto listening on http://127.0.0.1:$port (log: $log_file)"
            exit 0
        fi
        sleep 0.2
    done
    echo "moto did not start on port $port; see $log_file" >&2
    exit 1
    ;;
stop)
    if [ -f "$pid_file" ]; then
        kill "$(cat "$pid_file")" 2>/dev/null || true
        rm -f "$pid_file"
    fi
    ;;
*)
    echo "usage: $0 start|stop [PORT]" >&2
    exit 2
    ;;
esac
