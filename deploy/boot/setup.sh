#!/bin/bash
#
# First boot of the rebalancer manager zone (Manta convention: the zone's
# user-script runs /opt/smartdc/boot/setup.sh once, then configure.sh at
# every boot). It sets up config-agent, log rotation and metrics like every
# Manta zone (the manta-scripts helpers in /opt/smartdc/boot/scripts), puts
# the job store on the zone's delegated dataset, and starts the manager.
#
# Unlike the legacy zone it installs no PostgreSQL: the Go manager keeps its
# jobs in a SQLite file (or in an external PostgreSQL named by the
# REBALANCER_DATABASE metadata key). docs/deploying.md says what was dropped.
#

export PS4='[\D{%FT%TZ}] ${BASH_SOURCE}:${LINENO}: ${FUNCNAME[0]:+${FUNCNAME[0]}(): }'
set -o xtrace
set -o errexit

SVC_ROOT=/opt/smartdc/rebalancer
# The delegated dataset keeps the job store across reprovisions (upgrades).
# The legacy mounted it here too: its PostgreSQL data, /rebalancer/pg, is
# left as it is.
DATA_ROOT=/rebalancer
JOB_STORE_DIR=$DATA_ROOT/manager
# The SMF manifest runs the manager as this user.
SVC_USER=nobody

# shellcheck source=/dev/null
source /opt/smartdc/boot/scripts/util.sh
# shellcheck source=/dev/null
source /opt/smartdc/boot/scripts/services.sh

# Mounts the zone's delegated dataset at $DATA_ROOT. A zone provisioned
# without one (a lab) gets a plain directory, which a reprovision loses.
function rebalancer_delegated_dataset {
    local dataset
    dataset="zones/$(zonename)/data"

    if zfs list -H -o name "$dataset" >/dev/null 2>&1; then
        if [[ "$(zfs get -H -o value mountpoint "$dataset")" != "$DATA_ROOT" ]]; then
            zfs set mountpoint="$DATA_ROOT" "$dataset" ||
                fatal "failed to mount $dataset at $DATA_ROOT"
        fi
    else
        warn "no delegated dataset $dataset: the job store will not survive a reprovision"
        mkdir -p "$DATA_ROOT"
    fi
    chmod 0755 "$DATA_ROOT"
}

# Creates the job store's directory, writable by the manager only. The
# default REBALANCER_DATABASE is $JOB_STORE_DIR/jobs.db.
function rebalancer_job_store {
    mkdir -p "$JOB_STORE_DIR"
    chown -R "$SVC_USER:$SVC_USER" "$JOB_STORE_DIR"
    chmod 0700 "$JOB_STORE_DIR"
}

manta_common_presetup
manta_add_manifest_dir "$SVC_ROOT"
manta_common2_setup "rebalancer"

# rebalancer-adm, rebalancer-manager and sharkspotter on root's PATH.
echo "export PATH=\$PATH:$SVC_ROOT/bin" >>/root/.bashrc

rebalancer_delegated_dataset
rebalancer_job_store

echo "Setting up the rebalancer manager"
/usr/sbin/svccfg import "$SVC_ROOT/smf/manifests/rebalancer.xml"

manta_common2_setup_log_rotation "rebalancer"
manta_common2_setup_end

# cmon-agent scrapes these ports for Prometheus metrics: 8878 is the
# manager's metrics_port, which the SAPI template leaves at its default.
mdata-put metricPorts "8878"

exit 0
