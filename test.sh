#!/usr/bin/env bash
# Runs every test on a fresh Debian/Ubuntu machine that has only the .NET SDK: installs the PostgreSQL server
# binaries when missing, restores, builds, tests, and ends with the plain line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")"
source ./scripts/prerequisites.sh

dotnet build ScheduleSync.slnx -c Release 2>&1 | tail -n 3
if [ "${PIPESTATUS[0]}" -ne 0 ]; then echo "build failed"; echo "0 passed, 1 failed"; exit 1; fi

rm -rf TestResults
dotnet test ScheduleSync.slnx -c Release --no-build --logger "trx;LogFileName=results.trx" --results-directory TestResults "$@"
status=$?

trx=$(find TestResults -name '*.trx' | head -n 1)
if [ -z "$trx" ]; then echo "no test results"; echo "0 passed, 1 failed"; exit 1; fi
counters=$(grep -o '<Counters [^>]*>' "$trx")
count() { echo "$counters" | sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p"; }
passed=$(count passed); failed=$(count failed); total=$(count total)
# A test that did not run (skipped, timed out, aborted) is not a pass.
notrun=$(( total - passed - failed ))
if [ "$notrun" -gt 0 ]; then failed=$(( failed + notrun )); fi
echo "${passed} passed, ${failed} failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
