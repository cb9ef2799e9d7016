# A throw-away single-node Slurm cluster for tests (sourced, not run).
#
#   . tests/slurm/cluster.sh
#   cluster_start      # installs Debian's slurm + munge if missing, starts them
#   ...sbatch / squeue / scontrol (SLURM_CONF points at the private config)...
#   cluster_stop       # stops only what cluster_start started, removes its files
#
# Everything lives in a private temporary directory: the config (passed with
# -f and SLURM_CONF, so /etc/slurm is never written), state, spool, logs and
# pid files. munged is reused when one already answers; otherwise it is
# started as the munge user and stopped again. The daemons are stopped by the
# pids recorded here (checked against /proc/PID/comm first), never by name.

CLUSTER_DIR=""
CLUSTER_PIDS=()
CLUSTER_STARTED_MUNGE=""

cluster_log() { echo "slurm-cluster: $*" >&2; }

cluster_install() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        && command -v sbatch >/dev/null && command -v munged >/dev/null; then
        return 0
    fi
    cluster_log "installing slurmctld slurmd slurm-client munge (Debian packages)"
    # Keep the packages' init scripts from starting daemons during install.
    local own_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    local rc=0
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null; } || rc=$?
    [ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d
    return $rc
}

# The pid in FILE, once the daemon has written it (up to 10 s).
cluster_pid_of() {
    local f=$1 i
    for i in $(seq 100); do
        if [ -s "$f" ]; then cat "$f"; return 0; fi
        sleep 0.1
    done
    return 1
}

cluster_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return 0 # a working munged: reuse it, leave it running
    fi
    if [ ! -s /etc/munge/munge.key ]; then
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
    fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    rm -f /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged
    CLUSTER_STARTED_MUNGE=$(cluster_pid_of /run/munge/munged.pid)
    local i
    for i in $(seq 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    cluster_log "munged did not start"
    return 1
}

cluster_start() {
    cluster_install || { cluster_log "could not install Slurm"; return 1; }
    if ss -ltn 2>/dev/null | grep -qE ':(6817|6818)\b'; then
        cluster_log "ports 6817/6818 are busy: another Slurm cluster runs here; refusing to start a second"
        return 1
    fi
    cluster_munge || return 1
    CLUSTER_DIR=$(mktemp -d /tmp/seispipe-slurm.XXXXXX)
    local h
    h=$(hostname -s)
    mkdir -p "$CLUSTER_DIR"/{state,spool,log}
    cat > "$CLUSTER_DIR/slurm.conf" <<EOF
ClusterName=seispipetest
SlurmctldHost=$h(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$CLUSTER_DIR/state
SlurmdSpoolDir=$CLUSTER_DIR/spool
SlurmctldPidFile=$CLUSTER_DIR/slurmctld.pid
SlurmdPidFile=$CLUSTER_DIR/slurmd.pid
SlurmctldLogFile=$CLUSTER_DIR/log/slurmctld.log
SlurmdLogFile=$CLUSTER_DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SchedulerParameters=batch_sched_delay=0
MinJobAge=30
MailProg=/bin/true
JobRequeue=1
SlurmdParameters=config_overrides
NodeName=$h NodeAddr=127.0.0.1 NodeHostname=$h CPUs=4 State=UNKNOWN
PartitionName=test Nodes=$h Default=YES MaxTime=INFINITE State=UP
EOF
    export SLURM_CONF="$CLUSTER_DIR/slurm.conf"
    slurmctld -c -f "$SLURM_CONF" || { cluster_log "slurmctld failed"; return 1; }
    CLUSTER_PIDS+=("$(cluster_pid_of "$CLUSTER_DIR/slurmctld.pid")")
    (cd "$CLUSTER_DIR/log" && slurmd -N "$h" -f "$SLURM_CONF") || { cluster_log "slurmd failed"; return 1; }
    CLUSTER_PIDS+=("$(cluster_pid_of "$CLUSTER_DIR/slurmd.pid")")
    local i state
    for i in $(seq 100); do
        state=$(sinfo -h -N -o %T 2>/dev/null | head -1)
        [ "$state" = idle ] && { cluster_log "node $h idle"; return 0; }
        sleep 0.2
    done
    cluster_log "the node did not become idle (state: ${state:-none}); see $CLUSTER_DIR/log"
    return 1
}

# Kill PID if it is still the process NAME (zombies count as gone).
cluster_kill() {
    local pid=$1 name=$2 i
    [ -n "$pid" ] && [ -e "/proc/$pid" ] || return 0
    case "$(cat "/proc/$pid/comm" 2>/dev/null)" in
        "$name"*) ;;
        *) return 0 ;;
    esac
    kill "$pid" 2>/dev/null
    for i in $(seq 50); do
        [ -e "/proc/$pid" ] || return 0
        grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null && return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null
}

cluster_stop() {
    local pid
    if [ -n "$CLUSTER_DIR" ] && [ -n "${SLURM_CONF:-}" ]; then
        scancel --user=root >/dev/null 2>&1 || true
    fi
    # slurmd, then slurmctld (reverse order of start).
    cluster_kill "${CLUSTER_PIDS[1]:-}" slurmd
    cluster_kill "${CLUSTER_PIDS[0]:-}" slurmctld
    # Step daemons of this cluster left behind (their cwd is our log dir).
    if [ -n "$CLUSTER_DIR" ]; then
        for pid in $(pgrep -x slurmstepd 2>/dev/null); do
            case "$(readlink "/proc/$pid/cwd" 2>/dev/null)" in
                "$CLUSTER_DIR"*) kill -9 "$pid" 2>/dev/null ;;
            esac
        done
    fi
    [ -n "$CLUSTER_STARTED_MUNGE" ] && cluster_kill "$CLUSTER_STARTED_MUNGE" munged
    [ -n "$CLUSTER_DIR" ] && rm -rf "$CLUSTER_DIR"
    CLUSTER_DIR=""
    CLUSTER_PIDS=()
    CLUSTER_STARTED_MUNGE=""
    unset SLURM_CONF
}
