#!/usr/bin/env bash
# Generates the benchmark data and runs the check and plan benchmarks in
# release mode, one process per measurement so each reports its own peak
# memory. Usage: crates/bench/run-benchmarks.sh [DATA_DIR]
set -euo pipefail

data="${1:-/tmp/dsync-bench}"
cd "$(dirname "$0")/../.."

cargo build --release -p dsync-bench
gen=target/release/dsync-gen
bench=target/release/dsync-bench

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/ {print $2}') GiB RAM"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

"$gen" --users 100000 --groups 500 --memberships 300000 --change-rate 0.01 --seed 7 --out "$data/100k"
"$gen" --users 1000000 --groups 2000 --memberships 3000000 --change-rate 0.01 --seed 7 --out "$data/1m"

# check: users.csv alone, then the whole folder (users, groups, memberships).
for size in 100k 1m; do
    mkdir -p "$data/$size-users"
    ln -sf "$data/$size/before/users.csv" "$data/$size-users/users.csv"
    "$bench" check "$data/$size-users" --runs 3
    "$bench" check "$data/$size/before" --runs 3
done

"$bench" plan "$data/100k/before" "$data/100k/after" --runs 3
"$bench" plan "$data/1m/before" "$data/1m/after" --runs 3

echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
