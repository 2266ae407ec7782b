#!/usr/bin/env bash
# A throwaway single-node SLURM cluster (Debian's slurm-wlm + munge), everything under one folder:
#   scripts/slurm-up.sh [DIR]     (default: /tmp/tlbench-slurm; run as root)
#   export SLURM_CONF=DIR/slurm.conf   then sinfo / srun / sbatch / hydra/launcher=slurm work
#   scripts/slurm-down.sh [DIR]   stops the daemons this script started (by their pid files)
# Config, munge key and socket, controller state, slurmd spool and logs all live in DIR, so
# nothing in /etc/slurm or /etc/munge is touched and two clusters never share state. Ports are
# picked free at start (SLURM_UP_PORT=<n> uses n and n+1). Needs: apt-get install slurm-wlm munge.
set -euo pipefail

DIR="$(realpath -m "${1:-/tmp/tlbench-slurm}")"
CPUS="${SLURM_UP_CPUS:-2}"
HOST="$(hostname -s)"
# The node's memory in MB (without it SLURM assumes 1 MB and refuses every --mem request).
MEM_MB="${SLURM_UP_MEM_MB:-$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)}"

for bin in slurmctld slurmd munged mungekey sinfo; do
    command -v "$bin" >/dev/null || PATH="$PATH:/usr/sbin"
    command -v "$bin" >/dev/null || { echo "slurm-up: $bin not found (apt-get install slurm-wlm munge)" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "slurm-up: slurmd must run as root (sudo $0 $DIR)" >&2; exit 2; }
if [ -f "$DIR/slurmctld.pid" ] && kill -0 "$(cat "$DIR/slurmctld.pid")" 2>/dev/null; then
    echo "slurm-up: a cluster already runs from $DIR (scripts/slurm-down.sh $DIR first)" >&2
    exit 2
fi

mkdir -p "$DIR"/{munge,state,spool,log}
chown munge: "$DIR/munge"
chmod 0755 "$DIR/munge"  # munged: the socket dir must be searchable by all
[ -f "$DIR/munge/munge.key" ] || runuser -u munge -- mungekey -c -k "$DIR/munge/munge.key"

# Two free TCP ports for slurmctld and slurmd (a system cluster keeps 6817/6818).
if [ -n "${SLURM_UP_PORT:-}" ]; then
    CTLD_PORT="$SLURM_UP_PORT"; SLURMD_PORT=$((SLURM_UP_PORT + 1))
else
    read -r CTLD_PORT SLURMD_PORT < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
)
fi

cat > "$DIR/slurm.conf" <<EOF
# written by scripts/slurm-up.sh: a throwaway single-node cluster under $DIR
ClusterName=tlbench
SlurmctldHost=$HOST
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket
CryptoType=crypto/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
SchedulerType=sched/backfill
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
PlugStackConfig=$DIR/plugstack.conf
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
: > "$DIR/plugstack.conf"
export SLURM_CONF="$DIR/slurm.conf"

runuser -u munge -- munged --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket" \
    --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" \
    --seed-file="$DIR/munge/munged.seed"
cp "$DIR/munge/munged.pid" "$DIR/munged.pid"
slurmctld -i -f "$SLURM_CONF"  # -i: ignore state left by an earlier cluster in this DIR
slurmd -f "$SLURM_CONF"

# The node registers within a few seconds; srun/sbatch before that would wait or fail.
for _ in $(seq 1 60); do
    if sinfo -h -N -o '%t' 2>/dev/null | grep -qx 'idle'; then
        echo "slurm-up: cluster up in $DIR (node $HOST, $CPUS CPUs, $MEM_MB MB)"
        echo "export SLURM_CONF=$SLURM_CONF"
        exit 0
    fi
    sleep 0.5
done
echo "slurm-up: the node did not become idle in 30 s; logs in $DIR/log/" >&2
sinfo >&2 || true
exit 1
