#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, to try `acai reproduce --executor slurm` (and for the
# tests, tests/test_slurm.py). Run as root on Debian/Ubuntu; running it again changes nothing.
#
#   sudo bash scripts/slurm-local.sh          # installs slurm-wlm and munge if missing, starts
#                                             # munged, slurmctld and slurmd, waits for the node
#   sinfo; squeue                             # look at it
#   scontrol shutdown; kill "$(cat /run/munge/munged.pid)"   # stop it
#
# The cluster: one node described by `slurmd -C` (its CPUs and memory), partition `debug`
# (the default), select/cons_tres by core, proctrack/linuxproc (no cgroups needed, so it runs in
# containers), no accounting (sacct does not work: acai polls squeue instead), requeue allowed.
# It never overwrites a slurm.conf that it did not write itself.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
MARK="# written by acai scripts/slurm-local.sh"

if [ "$(id -u)" -ne 0 ]; then
    echo "slurm-local.sh: run it as root (it installs packages and starts daemons)" >&2
    exit 1
fi
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    echo "slurm-local.sh: $CONF exists and was not written by this script; leaving this cluster alone" >&2
    exit 1
fi

host=$(hostname -s)
node=$(slurmd -C | head -n 1)  # "NodeName=HOST CPUs=N Boards=... RealMemory=M"
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm
cat > "$CONF.new" <<EOF
$MARK
ClusterName=acai-local
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# A requeued task (preemption, time limit) runs again; SIGTERM leaves KillWait seconds to save.
# A requeued job waits for its credential to expire (cred_expire, 120 s by default) and then for
# the next scheduling pass (sched_interval, 60 s): both short here, so that a requeue is quick.
JobRequeue=1
AuthInfo=cred_expire=10
SchedulerParameters=sched_interval=2,bf_interval=2
KillWait=30
# Finished tasks stay visible to squeue for 10 minutes: their final state without accounting.
MinJobAge=600
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
$node State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
if ! cmp -s "$CONF.new" "$CONF"; then
    mv "$CONF.new" "$CONF"
    changed=1
else
    rm "$CONF.new"
    changed=0
fi

# munge: the daemon that authenticates slurm's messages (the key comes with the package).
mkdir -p /run/munge && chown munge:munge /run/munge && chmod 0755 /run/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
fi

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
if [ "$changed" = 1 ]; then  # a new configuration: restart whatever runs with the old one
    for pid in /run/slurm/slurmd.pid /run/slurm/slurmctld.pid; do
        if running "$pid"; then kill "$(cat "$pid")"; while running "$pid"; do sleep 0.1; done; fi
    done
fi
running /run/slurm/slurmctld.pid || slurmctld
running /run/slurm/slurmd.pid || slurmd

for _ in $(seq 300); do
    state=$(sinfo -h -n "$host" -o %t 2>/dev/null || true)
    case "$state" in
        idle|mix|alloc) break ;;
        drain*|down*) scontrol update nodename="$host" state=resume 2>/dev/null || true ;;
    esac
    sleep 0.2
done
if ! sinfo -h -n "$host" -o %t | grep -qE '^(idle|mix|alloc)'; then
    echo "slurm-local.sh: node $host did not come up; see /var/log/slurm/slurmctld.log and slurmd.log" >&2
    sinfo >&2 || true
    exit 1
fi
sinfo
echo "SLURM is up on $host (partition debug). Stop it with: scontrol shutdown; kill \"\$(cat /run/munge/munged.pid)\""
