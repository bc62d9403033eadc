#!/usr/bin/env bash
# Benchmarks of `dsync serve` on this machine, all on 127.0.0.1.
#
#   crates/bench/serve-bench.sh latency USERS [RUNS]
#       Upload-to-events latency: a fresh data dir and a fresh `dsync serve`
#       per run, then `sftp -b` puts users.csv (USERS users from dsync-gen)
#       and the clock stops when GET /events?events=dsync.user.created has
#       returned USERS events (paged forward with `after`, 100 per page).
#       Also prints the upload and sync durations that serve logs.
#
#   crates/bench/serve-bench.sh sftp MEGABYTES [RUNS]
#       Upload throughput of one file of random bytes with `sftp -b` put, to
#       the embedded SFTP server and to OpenSSH's sftp-server under an sshd
#       of its own (temporary config and host key, 127.0.0.1, a free port).
#
# Every run prints one line with the load average of that moment. Needs a
# release build: cargo build --release -p dsync-cli -p dsync-bench
# Environment: CIPHER (default aes256-gcm@openssh.com, which both servers
# offer), SSHD and SFTP_SERVER (OpenSSH paths), KEEP=1 keeps the temporary
# folder with the serve logs.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DSYNC=$ROOT/target/release/dsync
GEN=$ROOT/target/release/dsync-gen
CIPHER=${CIPHER:-aes256-gcm@openssh.com}
SSHD=${SSHD:-/usr/sbin/sshd}
SFTP_SERVER=${SFTP_SERVER:-/usr/lib/openssh/sftp-server}

mode=${1:?usage: serve-bench.sh latency USERS [RUNS] | sftp MEGABYTES [RUNS]}
size=${2:?missing USERS or MEGABYTES}
runs=${3:-3}

WORK=$(mktemp -d /tmp/serve-bench.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]:-}"; do
        [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    [ -n "${KEEP:-}" ] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
    local port=$1
    for _ in $(seq 1 200); do
        if python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1',$port)))"; then
            return 0
        fi
        sleep 0.05
    done
    echo "nothing listens on 127.0.0.1:$port" >&2
    return 1
}

now() { date +%s.%N; }
load() { cut -d' ' -f1 /proc/loadavg; }

SFTP_OPTS=(-q -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
    -o LogLevel=ERROR -o "Ciphers=$CIPHER")

# Starts `dsync serve` on a fresh data dir; sets DATA, SFTP_PORT, HTTP_PORT,
# SERVE_PID, DIR_ID, LOGIN, API_KEY. $1 names the run.
start_serve() {
    DATA=$WORK/$1/data
    mkdir -p "$DATA"
    SFTP_PORT=$(free_port)
    HTTP_PORT=$(free_port)
    local debounce=()
    if "$DSYNC" serve --help | grep -q -- --sync-debounce-ms; then
        debounce=(--sync-debounce-ms 0)
    fi
    "$DSYNC" serve --data-dir "$DATA" --sftp-listen "127.0.0.1:$SFTP_PORT" \
        --http-listen "127.0.0.1:$HTTP_PORT" "${debounce[@]}" --log-format json \
        2>"$WORK/$1/serve.log" >/dev/null &
    SERVE_PID=$!
    PIDS+=("$SERVE_PID")
    wait_port "$SFTP_PORT"
    wait_port "$HTTP_PORT"
    DIR_ID=$("$DSYNC" directory create --organization org_bench --name Bench \
        --data-dir "$DATA" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    ssh-keygen -q -t ed25519 -N '' -f "$WORK/$1/key"
    LOGIN=$("$DSYNC" key add "$DIR_ID" "$WORK/$1/key.pub" --data-dir "$DATA" --json |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["sftp"]["username"])')
    API_KEY=$("$DSYNC" api-key create --data-dir "$DATA" --json |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')
}

stop_serve() {
    kill "$SERVE_PID" 2>/dev/null || true
    wait "$SERVE_PID" 2>/dev/null || true
}

# Reads the events API forward until $1 dsync.user.created events have been
# returned; prints the times it saw the first and the last one.
wait_events() {
    python3 - "$HTTP_PORT" "$API_KEY" "$1" <<'EOF'
import http.client, json, sys, time
port, key, want = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
seen, after, first, deadline = 0, None, None, time.time() + 1800
while seen < want:
    path = "/events?events=dsync.user.created&limit=100"
    if after:
        path += "&after=" + after
    conn.request("GET", path, headers={"Authorization": "Bearer " + key})
    resp = conn.getresponse()
    body = resp.read()
    if resp.status != 200:
        sys.exit(f"GET {path}: HTTP {resp.status}: {body[:300]!r}")
    data = json.loads(body)["data"]
    if data:
        if first is None:
            first = time.time()
        seen += len(data)
        after = data[-1]["id"]
    elif time.time() > deadline:
        sys.exit(f"only {seen} of {want} events after 30 minutes")
    else:
        time.sleep(0.02)
print(f"{first:.3f} {time.time():.3f}")
EOF
}

# Prints "upload_ms sync_ms outcome sync_finished_epoch" from a serve log in
# JSON lines.
log_split() {
    python3 - "$1" <<'EOF'
import json, sys, datetime
upload = sync = outcome = finished = None
for line in open(sys.argv[1]):
    try:
        rec = json.loads(line)
    except ValueError:
        continue
    fields = rec.get("fields", rec)
    msg = fields.get("message")
    if msg == "upload completed":
        upload = fields.get("duration_ms")
    elif msg == "sync finished":
        sync, outcome = fields.get("duration_ms"), fields.get("outcome")
        stamp = rec["timestamp"].rstrip("Z")[:26]
        finished = datetime.datetime.fromisoformat(stamp).replace(
            tzinfo=datetime.timezone.utc).timestamp()
print(upload, sync, outcome, f"{finished:.3f}")
EOF
}

latency() {
    local users=$1
    "$GEN" --users "$users" --out "$WORK/gen" --seed 7 >/dev/null
    local csv=$WORK/gen/before/users.csv
    echo "users.csv: $users users, $(stat -c %s "$csv") bytes"
    for run in $(seq 1 "$runs"); do
        start_serve "run$run"
        printf 'put %s users.csv\n' "$csv" >"$WORK/run$run/batch"
        local l0 t0 t1 t2 first
        # The reader polls from before the upload, so its start-up is not timed.
        wait_events "$users" >"$WORK/run$run/events" &
        local reader=$!
        sleep 0.5
        l0=$(load)
        t0=$(now)
        sftp "${SFTP_OPTS[@]}" -i "$WORK/run$run/key" -P "$SFTP_PORT" \
            -b "$WORK/run$run/batch" "$LOGIN@127.0.0.1" >/dev/null
        t1=$(now)
        wait "$reader"
        read -r first t2 <"$WORK/run$run/events"
        read -r up_ms sync_ms outcome done_at < <(log_split "$WORK/run$run/serve.log")
        python3 -c "import sys; t0,t1,t2,f,d=map(float,sys.argv[1:6]); print(f'latency users=$users run=$run total_s={t2-t0:.3f} sftp_s={t1-t0:.3f} sync_finished_s={d-t0:.3f} first_event_s={f-t0:.3f} serve_upload_ms=$up_ms serve_sync_ms=$sync_ms outcome=$outcome load_before=$l0 load_after=$(load)')" "$t0" "$t1" "$t2" "$first" "$done_at"
        stop_serve
    done
}

sftp_throughput() {
    local mb=$1
    local file=$WORK/blob.bin
    head -c "$((mb * 1024 * 1024))" /dev/urandom >"$file"
    local bytes
    bytes=$(stat -c %s "$file")

    # OpenSSH: an sshd of our own with its own host key, key-only, 127.0.0.1.
    local ossh=$WORK/openssh
    mkdir -p "$ossh/up"
    ssh-keygen -q -t ed25519 -N '' -f "$ossh/host_key"
    ssh-keygen -q -t ed25519 -N '' -f "$ossh/client_key"
    local port
    port=$(free_port)
    cat >"$ossh/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $port
HostKey $ossh/host_key
PidFile $ossh/sshd.pid
AuthorizedKeysFile $ossh/client_key.pub
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM no
PermitRootLogin prohibit-password
Ciphers $CIPHER
Subsystem sftp $SFTP_SERVER
EOF
    mkdir -p /run/sshd
    "$SSHD" -D -e -f "$ossh/sshd_config" -p "$port" 2>"$ossh/sshd.log" &
    local sshd_pid=$!
    PIDS+=("$sshd_pid")
    wait_port "$port"

    start_serve embedded
    local user
    user=$(id -un)
    echo "file: $bytes bytes of random data; cipher $CIPHER"
    for run in $(seq 1 "$runs"); do
        for target in embedded openssh; do
            local l0 t0 t1
            if [ "$target" = embedded ]; then
                printf 'put %s blob.bin\n' "$file" >"$WORK/batch"
                l0=$(load)
                t0=$(now)
                sftp "${SFTP_OPTS[@]}" -i "$WORK/embedded/key" -P "$SFTP_PORT" \
                    -b "$WORK/batch" "$LOGIN@127.0.0.1" >/dev/null
                t1=$(now)
            else
                rm -f "$ossh/up/blob.bin"
                printf 'put %s %s/up/blob.bin\n' "$file" "$ossh" >"$WORK/batch"
                l0=$(load)
                t0=$(now)
                sftp "${SFTP_OPTS[@]}" -i "$ossh/client_key" -P "$port" \
                    -b "$WORK/batch" "$user@127.0.0.1" >/dev/null
                t1=$(now)
                [ "$(stat -c %s "$ossh/up/blob.bin")" = "$bytes" ] || { echo "openssh copy is short" >&2; exit 1; }
            fi
            python3 -c "import sys; t0,t1=map(float,sys.argv[1:3]); print(f'sftp target=$target run=$run seconds={t1-t0:.3f} MBps={$bytes/1e6/(t1-t0):.1f} load_before=$l0 load_after=$(load)')" "$t0" "$t1"
        done
    done
    stop_serve
    kill "$sshd_pid" 2>/dev/null || true
    wait "$sshd_pid" 2>/dev/null || true
}

echo "machine: nproc=$(nproc) cpu=\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')\" ram=$(free -g | awk '/^Mem:/ {print $2}')GiB"
case $mode in
latency) latency "$size" ;;
sftp) sftp_throughput "$size" ;;
*)
    echo "unknown mode $mode: use latency or sftp" >&2
    exit 2
    ;;
esac
