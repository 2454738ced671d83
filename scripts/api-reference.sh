#!/usr/bin/env bash
# Writes the API reference (docs/api.md) from the server's OpenAPI document.
#   scripts/api-reference.sh [URL]   URL of a running server's /openapi.json; without one, a throwaway server is started
#                                    on a copy of config/schedule_config.yml with its own embedded cluster, then stopped.
#   OUT=- scripts/api-reference.sh   writes to stdout instead of docs/api.md
#   SCHEDSYNC="dotnet path/schedsync.dll"   the executable (default: the Release build in src/ScheduleSync)
# The test DocsApiReferenceTests fails when docs/api.md does not match the document.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${OUT:-$root/docs/api.md}"
[ "$out" = - ] && out=/dev/stdout
json="$(mktemp)"
trap 'rm -f "$json"' EXIT
if [ $# -ge 1 ]; then
  curl -sSf "$1" -o "$json"
else
  read -r -a exe <<< "${SCHEDSYNC:-$root/src/ScheduleSync/bin/Release/net10.0/schedsync}"
  work="$(mktemp -d /tmp/schedsync-api.XXXXXX)"
  chmod 755 "$work"   # as root the cluster runs as postgres, who must reach the data folder
  cp "$root/config/schedule_config.yml" "$work/"
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  unset "${!SCHEDSYNC_@}"
  SCHEDSYNC_DATA_DIR="$work/data" "${exe[@]}" serve --config "$work/schedule_config.yml" --urls "http://127.0.0.1:$port" \
    >"$work/serve.log" 2>&1 </dev/null &
  server=$!
  trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work" "$json"' EXIT
  for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$port/openapi.json" -o "$json" && break
    kill -0 "$server" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
    sleep 0.1
  done
  [ -s "$json" ] || { echo "the server did not answer /openapi.json" >&2; cat "$work/serve.log" >&2; exit 1; }
fi
python3 "$root/scripts/api-reference.py" "$json" > "$out"
