#!/usr/bin/env bash
# The release command: builds the tarballs Triton deploys the rebalancer
# from (illumos/amd64, the legacy layouts), the agent's image manifest and
# the commands for this machine, into bin/release, and checks them.
# Arguments go to cmd/rebalancer-release (--help lists them), e.g.
#   ./scripts/release.sh --manta-scripts ../manta-scripts
set -euo pipefail
cd "$(dirname "$0")/.."
go build -o bin/rebalancer-release ./cmd/rebalancer-release
exec bin/rebalancer-release "$@"
