#!/usr/bin/env bash
# Runs the ScheduleSync benchmarks (see bench/README.md). Starts its own durable PostgreSQL in a temp folder.
#   bench/run.sh [--quick] [--json out.json]     floors + scenarios for N = 100 … 100,000 (--quick: 100 and 1,000)
#   bench/run.sh micro [BenchmarkDotNet args]    micro-benchmarks of the pure parts (N = 1,000) and the YAML parsers
#   bench/run.sh yaml                            the YAML parser comparison alone
#   bench/run.sh replicas [--rounds 60] [--seconds 10]   3 serve processes on one database: A → C propagation, 16 API writers over 3 vs 1
set -euo pipefail
cd "$(dirname "$0")/.."
source ./scripts/prerequisites.sh
mode=scenarios
case "${1:-}" in
  scenarios|micro|yaml|profile|replicas) mode=$1; shift ;;
esac
exec dotnet run -c Release --project bench/ScheduleSync.Benchmarks -- "$mode" "$@"
