# Sourced by test.sh and run.sh: make sure the PostgreSQL server binaries (and the small tools the tests use) exist.
# Chromium is Debian's, for the browser tests (Playwright drives /usr/bin/chromium and never downloads a browser).
need_apt=()
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  need_apt+=(postgresql)
fi
command -v flock >/dev/null 2>&1 || need_apt+=(util-linux)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
command -v strace >/dev/null 2>&1 || need_apt+=(strace)
# The WebSocket client examples in docs/examples, which only the tests run: Node (20.10+ for its built-in WebSocket)
# and Debian's websockets package for /usr/bin/python3.
if [ "$(basename "$0")" = test.sh ]; then
  command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
  /usr/bin/python3 -c 'import websockets' >/dev/null 2>&1 || need_apt+=(python3-websockets)
fi
# Only the tests need a browser; run.sh does not.
[ "$(basename "$0")" = test.sh ] && [ ! -x /usr/bin/chromium ] && need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
