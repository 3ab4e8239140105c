#!/usr/bin/env bash
# The project's test command: runs the whole test suite, race detector on,
# against a throwaway PostgreSQL started from this machine's binaries.
# Progress as it goes (a line per package, failed tests' output, every 30s
# the packages still running), then a closing line "N passed, N failed,
# N skipped"; the exit status is non-zero when anything failed.
# Extra arguments go to `go test` (e.g. ./scripts/test.sh -run TestFoo ./agent/).
# What tests write for people to look at (the status page's screenshots)
# goes under $TEST_ARTIFACTS, by default test-artifacts/ here.
set -euo pipefail
cd "$(dirname "$0")/.."
export TEST_ARTIFACTS="${TEST_ARTIFACTS:-$PWD/test-artifacts}"
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(./...)
# Built rather than `go run`, which would add its own "exit status 1"
# after the closing line.
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/" ./internal/testsummary ./internal/pgtest/withpg
status=0
"$bin/testsummary" -- "$bin/withpg" -- go test -json -race -count=1 "${args[@]}" || status=$?
exit "$status"
