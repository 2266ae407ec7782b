#!/usr/bin/env bash
# Stop the throwaway cluster scripts/slurm-up.sh started from DIR (default /tmp/tlbench-slurm):
# only the daemons named in DIR's pid files (slurmd, slurmctld, munged), all signalled at once,
# then waited for (SIGKILL after 10 s). DIR itself (config, logs, state) stays; delete it by hand.
set -uo pipefail

DIR="$(realpath -m "${1:-/tmp/tlbench-slurm}")"
pids=()
for name in slurmd slurmctld munged; do
    pidfile="$DIR/$name.pid"
    [ -f "$pidfile" ] || continue
    pid="$(cat "$pidfile")"
    # a recycled pid is not ours: only signal a process that runs this daemon
    if [ -n "$pid" ] && grep -qa "$name" "/proc/$pid/cmdline" 2>/dev/null; then
        kill "$pid" && pids+=("$pid")
    fi
    rm -f "$pidfile"
done
for _ in $(seq 1 100); do
    alive=()
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
    [ ${#alive[@]} -eq 0 ] && break
    sleep 0.1
done
for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && kill -9 "$pid"; done
echo "slurm-down: stopped the cluster of $DIR"
