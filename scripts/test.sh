#!/usr/bin/env bash
# The project's test command: runs the whole test suite, race detector on,
# against a throwaway PostgreSQL started from this machine's binaries.
# Extra arguments go to `go test` (e.g. ./scripts/test.sh -run TestFoo ./agent/).
set -euo pipefail
cd "$(dirname "$0")/.."
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(./...)
exec go run ./internal/pgtest/withpg -- go test -race -count=1 "${args[@]}"
