#!/bin/bash
#
# Every boot of the rebalancer manager zone, after setup.sh on the first.
#
# Gives the job store back to the manager's user: a maintenance command run
# as root while the manager was stopped (rebalancer-manager's own
# subcommands, sqlite3) may have left root-owned files in it, which the
# manager, running as nobody, could not write.
#

export PS4='[\D{%FT%TZ}] ${BASH_SOURCE}:${LINENO}: ${FUNCNAME[0]:+${FUNCNAME[0]}(): }'
set -o xtrace
set -o errexit

JOB_STORE_DIR=/rebalancer/manager
SVC_USER=nobody

if [[ -d "$JOB_STORE_DIR" ]]; then
    chown -R "$SVC_USER:$SVC_USER" "$JOB_STORE_DIR"
fi

exit 0
