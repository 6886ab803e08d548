#!/usr/bin/env bash
# A private single-node SLURM cluster on this machine, for tests/test_slurm.py, CI and trying the
# submitter without a real cluster. Everything lives in DIR: slurm.conf, the MUNGE key and socket,
# state, spool, logs and pid files. The daemons listen on free ports chosen at start, so the
# cluster never touches /etc/slurm, /etc/munge or another cluster on the same machine.
#
#   slurm/local-cluster.sh start DIR [CPUS]   # writes DIR/slurm.conf, starts munged, slurmctld,
#                                             # slurmd; waits until the node is idle
#   export SLURM_CONF=DIR/slurm.conf          # every sbatch/squeue/scontrol call then uses it
#   slurm/local-cluster.sh stop DIR           # stops the three daemons started from DIR
#
# CPUS (default: twice the cores, at least 4) is what the node offers jobs; it may exceed the
# real cores (SlurmdParameters=config_overrides), so short jobs run side by side. Needs root (the
# daemons run as root) and the packages of slurm/install-local.sh. No accounting database:
# finished jobs stay visible to `scontrol show job` for a day (MinJobAge), and every finished
# job is a line in DIR/jobcomp.log.
set -euo pipefail

usage() { echo "usage: $0 start DIR [CPUS] | stop DIR | status DIR" >&2; exit 2; }
[ $# -ge 2 ] || usage
action=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)
export SLURM_CONF=$dir/slurm.conf
PATH=$PATH:/usr/sbin:/sbin

free_port() {  # a TCP port nothing listens on (bash's /dev/tcp connects only to a listener)
  local p
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  echo "local-cluster.sh: no free port" >&2; exit 1
}

stop_pidfile() {  # stop the daemon whose pid is in $1 (only that process), wait for it to go
  local f=$1 pid
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

node_state() { scontrol show node "$node" -o 2>/dev/null | sed -n 's/.*State=\([^ ]*\).*/\1/p'; }

case $action in
start)
  if [ "$(id -u)" -ne 0 ]; then echo "local-cluster.sh: run as root" >&2; exit 3; fi
  for cmd in munged slurmctld slurmd sbatch; do
    command -v "$cmd" >/dev/null || { echo "local-cluster.sh: $cmd missing: run" \
      "slurm/install-local.sh" >&2; exit 3; }
  done
  cores=$(nproc)
  cpus=${3:-$(( cores * 2 > 4 ? cores * 2 : 4 ))}
  node=$(hostname -s)
  mem_mb=$(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo)
  mkdir -p "$dir/state" "$dir/spool" "$dir/munge" "$dir/log"
  chmod 700 "$dir/munge"
  [ -s "$dir/munge/munge.key" ] || head -c 1024 /dev/urandom > "$dir/munge/munge.key"
  chmod 400 "$dir/munge/munge.key"
  cat > "$dir/slurm.conf" <<EOF
# single-node test cluster written by slurm/local-cluster.sh
ClusterName=scalelens-local
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobcomp.log
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
MinJobAge=86400
KillWait=10
InactiveLimit=0
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=local Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
  munged --force --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munged.pid" --log-file="$dir/log/munged.log" \
    --seed-file="$dir/munge/munged.seed"
  slurmctld -i   # -i: ignore any state a previous cluster left in DIR/state
  slurmd
  for _ in $(seq 120); do
    state=$(node_state || true)
    case $state in
      IDLE*) echo "local-cluster.sh: node $node idle with $cpus CPUs; export SLURM_CONF=$SLURM_CONF"
             exit 0 ;;
    esac
    sleep 0.5
  done
  echo "local-cluster.sh: node $node not idle after 60 s (state '${state:-none}'); logs in" \
       "$dir/log" >&2
  tail -n 20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
  exit 1
  ;;
stop)
  stop_pidfile "$dir/slurmd.pid"
  stop_pidfile "$dir/slurmctld.pid"
  stop_pidfile "$dir/munged.pid"
  echo "local-cluster.sh: stopped the cluster in $dir"
  ;;
status)
  node=$(hostname -s)
  sinfo
  squeue
  ;;
*) usage ;;
esac
