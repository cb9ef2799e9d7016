#!/bin/bash
# seispipe on a real Slurm cluster (single node, started and stopped here):
#  1. a 4-task array from `seispipe slurm --submit` runs a pipeline into one
#     output, the dependent merge job runs, and the result equals the
#     single-process run byte for byte;
#  2. a task killed mid-run (`scontrol requeue` while it writes) is requeued,
#     resumes its own shards, and the merge is still identical;
#  3. a failing task: the merge job never runs (Slurm cancels it) and
#     `seispipe merge` names the unfinished partition.
# usage: tests/slurm/run.sh [SEISPIPE_BINARY]   (root; installs Debian's slurm)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=$(realpath "${1:-target/release/seispipe}")
PY=${SEISPIPE_PYTHON:-$HOME/.cache/seispipe/venv/bin/python}
. tests/slurm/cluster.sh

# A working directory with a space, a quote and a command substitution in its
# name: the generated scripts must run there and execute nothing from it.
W=$(mktemp -d "/tmp/seispipe slurm 'q' \$(touch PWNED).XXXXXX")
finish() {
    local rc=$?
    cluster_stop
    rm -rf "$W"
    exit $rc
}
trap finish EXIT
fail() { echo "slurm test FAILED: $*" >&2; exit 1; }
t0=$(date +%s)
cluster_start || fail "could not start the cluster"

# 48 labelled samples (2 files), re-simulated one shard per sample so a task
# writes long enough to be killed mid-run.
cd "$W"
"$BIN" synth in --family FlatVel_A --samples 24 --files 2 --seed 5 --threads 2 >/dev/null 2>&1
cat > p.toml <<'EOF'
seed = 3
copies = 1
keep_original = false
[input]
path = "in"
on_nonfinite = "error"
[output]
dir = "out"
samples_per_shard = 1
[[stages]]
type = "velocity_affine"
p = 1.0
[[stages]]
type = "gaussian_noise"
snr_db = 15.0
EOF
"$BIN" run p.toml --quiet --threads 2
mv out single

# Wait until job ID has left the queue (or TIMEOUT seconds pass).
wait_gone() {
    local id=$1 timeout=${2:-300} i
    for i in $(seq $((timeout * 5))); do
        [ -z "$(squeue -h -j "$id" 2>/dev/null)" ] && return 0
        sleep 0.2
    done
    fail "job $id still queued after ${timeout}s: $(squeue -j "$id")"
}
ids() { sed -n 's/^array job \([0-9]*\) .*merge job \([0-9]*\)$/\1 \2/p'; }
same() {
    # report.html shows when shards were written: the one file that differs.
    diff -r --exclude=.seispipe --exclude=report.html single "$1" >/dev/null \
        || fail "$1 differs from the single run: $(diff -rq --exclude=.seispipe --exclude=report.html single "$1" | head -3)"
    [ -f "$1/report.html" ] || fail "the merge wrote no report.html"
}

# 1. The array and the merge job.
read -r array merge < <("$BIN" slurm p.toml --partitions 4 --cpus-per-task 1 --submit | ids)
[ -n "${merge:-}" ] || fail "seispipe slurm --submit printed no job ids"
wait_gone "$merge"
[ -f out/manifest.json ] || fail "the merge job wrote no manifest: $(cat out-slurm/logs/merge.log 2>/dev/null)"
same out
echo "slurm: 4-task array + merge job = single run (byte for byte)"
rm -rf out out-slurm

# 2. Task 0 killed mid-run and requeued.
read -r array merge < <("$BIN" slurm p.toml --partitions 4 --cpus-per-task 1 --submit | ids)
journal=out/.seispipe/journal-0-of-4.jsonl
for i in $(seq 1500); do
    [ -s "$journal" ] && break
    sleep 0.1
done
done_before=$(wc -l < "$journal")
[ "$done_before" -ge 1 ] && [ "$done_before" -lt 12 ] || fail "task 0 was not mid-run ($done_before of 12 shards)"
scontrol requeue "${array}_0" || fail "scontrol requeue ${array}_0 failed"
wait_gone "$merge" 600
[ -f out/manifest.json ] || fail "no manifest after the requeue: $(cat out-slurm/logs/merge.log 2>/dev/null)"
same out
runs=$(grep -c '"partition":"0/4"' out/.seispipe/run-log.jsonl || true)
written=$("$PY" -c 'import json,sys; print(sum(json.loads(l)["shards_written"] for l in open(sys.argv[1]) if json.loads(l)["partition"] == "0/4"))' out/.seispipe/run-log.jsonl)
[ "$runs" -ge 2 ] || fail "partition 0/4 ran $runs time(s); the requeue did not restart it"
[ "$written" -eq 12 ] || fail "partition 0/4 wrote $written shards over its runs, 12 expected (resumed shards are not redone)"
echo "slurm: task killed mid-run after $done_before shard(s), requeued, resumed ($runs runs, 12 shards written once); merge = single run"
rm -rf out out-slurm

# 3. A failing task (a NaN in a sample of partition 3/4): no merge job.
"$PY" - <<'EOF'
import numpy as np
a = np.load("in/FlatVel_A/data/data2.npy")
a[20, 2, 500, 35] = np.nan
np.save("in/FlatVel_A/data/data2.npy", a)
EOF
read -r array merge < <("$BIN" slurm p.toml --partitions 4 --cpus-per-task 1 --submit | ids)
wait_gone "$array" 600
wait_gone "$merge" 60
[ ! -f out/manifest.json ] || fail "a manifest was written although partition 3/4 failed"
[ ! -s out-slurm/logs/merge.log ] || fail "the merge job ran: $(cat out-slurm/logs/merge.log)"
grep -q "sample 20" out-slurm/logs/task-3.log || fail "task 3's log does not name the bad sample: $(cat out-slurm/logs/task-3.log)"
if msg=$("$BIN" merge out 2>&1); then fail "seispipe merge succeeded on an unfinished output"; fi
echo "$msg" | grep -q "partition 3/4 lacks" || fail "seispipe merge did not name partition 3/4: $msg"
echo "slurm: a failing task cancels the merge job; seispipe merge names partition 3/4"
pwned=$(find /tmp "$W" -maxdepth 2 -name PWNED 2>/dev/null | head -1)
[ -z "$pwned" ] || fail "a generated script executed part of the path: $pwned exists"
echo "slurm: the working directory's name (space, quote, \$(…)) was passed through, not executed"
echo "slurm tests passed in $(( $(date +%s) - t0 )) s"
