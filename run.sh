#!/usr/bin/env bash
# Runs ScheduleSync on the shipped sample with the embedded PostgreSQL (started and stopped by schedsync itself).
# Extra arguments go to schedsync, e.g. ./run.sh plan, ./run.sh status.
set -euo pipefail
cd "$(dirname "$0")"
source ./scripts/prerequisites.sh
dotnet build src/ScheduleSync -c Release -v quiet -nologo >/dev/null
cmd=("$@")
[ ${#cmd[@]} -eq 0 ] && cmd=(sync)
exec dotnet src/ScheduleSync/bin/Release/net10.0/schedsync.dll "${cmd[@]}" --config "${SCHEDSYNC_CONFIG:-config/schedule_config.yml}"
