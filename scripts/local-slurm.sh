#!/usr/bin/env bash
# A one-node SLURM cluster on localhost, for the tests (tests/test_slurm.py) and for trying
# the SLURM profile: `scripts/local-slurm.sh [start]` installs Debian's slurm-wlm and munge
# (and slurmdbd with a local MariaDB: Slurm 22.05's sacct reads job accounting from slurmdbd
# only) where it can (root and apt-get), writes /etc/slurm/slurm.conf for this machine (its
# CPUs and memory as slurmd -C reads them, a GPU gres only where nvidia-smi lists GPUs),
# starts munged, mariadbd, slurmdbd, slurmctld and slurmd, and waits until the node is idle
# and sacct answers. `stop` stops the daemons this script started.
# Idempotent: a running cluster is left as it is. Exits non-zero with the reason when it
# cannot start one.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
MARK="# written by culteval scripts/local-slurm.sh"
STATE=/var/lib/culteval-slurm
LOGS=/var/log/culteval-slurm
WAIT_S=${CULTEVAL_SLURM_WAIT_S:-60}
PACKAGES="slurm-wlm slurmdbd munge mariadb-server"
DB_SOCKET=/run/mysqld/mysqld.sock

die() { echo "local-slurm: $*" >&2; exit 1; }

pids_of() {  # the pids in our pid files that are still alive
    local f
    for f in "$STATE"/run/*.pid; do
        [ -f "$f" ] || continue
        local pid; pid=$(cat "$f")
        if kill -0 "$pid" 2>/dev/null; then echo "$pid"; fi
    done
}

stop() {
    local pid
    for pid in $(pids_of); do kill "$pid" 2>/dev/null || true; done
    for _ in $(seq 1 20); do [ -z "$(pids_of)" ] && break; sleep 0.5; done
    [ -z "$(pids_of)" ] || die "daemons still running after 10 s: $(pids_of | tr '\n' ' ')"
    rm -f "$STATE"/run/*.pid
    echo "local-slurm: stopped"
}

node_idle() {
    local state
    state=$(sinfo -h -N -n localhost -o '%t' 2>/dev/null | head -n1) || return 1
    [ "$state" = idle ] || [ "$state" = mix ]
}

install() {
    local cmd missing=""
    for cmd in slurmctld slurmd slurmdbd sacct munged mariadbd; do
        command -v "$cmd" >/dev/null || missing="$missing $cmd"
    done
    [ -z "$missing" ] && return 0
    [ "$(id -u)" = 0 ] || die "missing:$missing; installing $PACKAGES needs root"
    command -v apt-get >/dev/null || die "missing:$missing; there is no apt-get to install $PACKAGES with"
    echo "local-slurm: installing $PACKAGES with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086
    apt-get install -y --no-install-recommends $PACKAGES >/dev/null 2>&1 \
        || { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends $PACKAGES >/dev/null; } \
        || die "apt-get could not install $PACKAGES"
}

write_conf() {
    # The node as slurmd sees it (CPUs, sockets, cores, threads, RealMemory), named localhost.
    local node gres="" gpus
    node=$(slurmd -C | head -n1 | sed -e 's/^NodeName=[^ ]*/NodeName=localhost/')
    gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
    if [ "${gpus:-0}" -gt 0 ]; then
        gres="GresTypes=gpu"
        node="$node Gres=gpu:$gpus"
        mkdir -p /etc/slurm
        printf '%s\nAutoDetect=off\nNodeName=localhost Name=gpu File=/dev/nvidia[0-%d]\n' "$MARK" $((gpus - 1)) \
            > /etc/slurm/gres.conf
    fi
    if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
        die "$CONF exists and was not written by this script: not overwriting it"
    fi
    mkdir -p /etc/slurm "$STATE"/ctld "$STATE"/d "$STATE"/run "$LOGS"
    # slurmdbd as root reaches MariaDB's root account through its unix_socket authentication
    cat > /etc/slurm/slurmdbd.conf <<DBD
$MARK
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$STATE/run/slurmdbd.pid
LogFile=$LOGS/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=culteval_slurm_acct_db
StorageUser=root
DBD
    chmod 600 /etc/slurm/slurmdbd.conf
    cat > "$CONF" <<CONF
$MARK
ClusterName=culteval-local
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
# no cgroup plugins: they need a systemd-managed cgroup tree, which containers and CI lack
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Per-step accounting (MaxRSS) sampled every 2 s; a step over its --mem is killed (OUT_OF_MEMORY).
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=2
JobAcctGatherParams=OverMemoryKill
# sacct (state, ReqCPUS, ReqMem, MaxRSS, Elapsed) needs slurmdbd in Slurm 22.05: without it
# sacct answers "Slurm accounting storage is disabled".
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
MinJobAge=300
# the executor plugin labels each job with its rule and wildcards in --comment: keep it for sacct
AccountingStoreFlags=job_comment
ReturnToService=2
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
$gres
$node State=UNKNOWN
PartitionName=local Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
}

start_db() {
    # a MariaDB already serving the socket is used as it is; else one is started and stopped by us
    mariadb-admin --socket="$DB_SOCKET" ping >/dev/null 2>&1 && return 0
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql >/dev/null \
        || die "mariadb-install-db could not create /var/lib/mysql"
    setsid mariadbd --user=mysql --socket="$DB_SOCKET" --skip-networking=0 --bind-address=127.0.0.1 \
        --pid-file=/run/mysqld/mariadbd.pid >"$LOGS"/mariadbd.log 2>&1 </dev/null &
    echo $! > "$STATE"/run/mariadbd.pid  # setsid execs mariadbd: $! is its pid
    for _ in $(seq 1 "$WAIT_S"); do
        mariadb-admin --socket="$DB_SOCKET" ping >/dev/null 2>&1 && return 0; sleep 1
    done
    die "mariadbd did not start (see $LOGS/mariadbd.log)"
}

start() {
    if [ -n "$(pids_of)" ] && node_idle; then
        echo "local-slurm: already running"; sinfo; return 0
    fi
    install
    [ "$(id -u)" = 0 ] || die "starting slurmctld and slurmd here needs root"
    write_conf
    if ! pgrep -x munged >/dev/null; then
        [ -f /etc/munge/munge.key ] || mungekey --create >/dev/null 2>&1 || die "no /etc/munge/munge.key and mungekey could not create one"
        mkdir -p /run/munge && chown munge:munge /run/munge 2>/dev/null || true
        if id munge >/dev/null 2>&1; then
            runuser -u munge -- munged || die "munged did not start (see /var/log/munge/munged.log)"
        else
            munged --force || die "munged did not start (see /var/log/munge/munged.log)"
        fi
    fi
    start_db
    [ -f "$STATE"/run/slurmdbd.pid ] && kill -0 "$(cat "$STATE"/run/slurmdbd.pid)" 2>/dev/null \
        || slurmdbd || die "slurmdbd did not start (see $LOGS/slurmdbd.log)"
    for _ in $(seq 1 "$WAIT_S"); do
        sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 1
    done
    sacctmgr -n list cluster >/dev/null 2>&1 || die "slurmdbd does not answer (see $LOGS/slurmdbd.log)"
    [ -f "$STATE"/run/slurmctld.pid ] && kill -0 "$(cat "$STATE"/run/slurmctld.pid)" 2>/dev/null \
        || slurmctld -i || die "slurmctld did not start (see $LOGS/slurmctld.log)"
    [ -f "$STATE"/run/slurmd.pid ] && kill -0 "$(cat "$STATE"/run/slurmd.pid)" 2>/dev/null \
        || slurmd || die "slurmd did not start (see $LOGS/slurmd.log)"
    for _ in $(seq 1 "$WAIT_S"); do
        if node_idle && sacct -n -X >/dev/null 2>&1; then echo "local-slurm: running"; sinfo; return 0; fi
        sleep 1
    done
    sinfo >&2 || true
    tail -n 20 "$LOGS"/slurmctld.log "$LOGS"/slurmd.log >&2 || true
    die "the node did not become idle within $WAIT_S s (logs in $LOGS)"
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    *) die "usage: $0 [start|stop]" ;;
esac
