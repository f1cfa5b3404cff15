#!/usr/bin/env bash
# A two-minute tour: create a log check with monitorctl, run monitord, write a crash line,
# and watch the CRITICAL and then the OK arrive. Everything lives in a temporary folder.
#
#   examples/quickstart.sh            (builds the binaries with cargo first)
#   MONITORD=... MONITORCTL=... examples/quickstart.sh   (use binaries you already have)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${MONITORD:-}" ] || [ -z "${MONITORCTL:-}" ]; then
    cargo build --quiet --bin monitord --bin monitorctl
    target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
    MONITORD=$target/debug/monitord MONITORCTL=$target/debug/monitorctl
fi

sandbox=$(mktemp -d)
export MONITOR_CONFIG_DIR=$sandbox/config MONITOR_STATE_DIR=$sandbox/state MONITOR_RUNTIME_DIR=$sandbox/run
agent=
cleanup() { [ -n "$agent" ] && kill "$agent" 2>/dev/null; wait 2>/dev/null; rm -rf "$sandbox"; }
trap cleanup EXIT

echo "# monitorctl create log crasher_app ERROR $sandbox/crasher.log 2"
"$MONITORCTL" create log crasher_app ERROR "$sandbox/crasher.log" 2
"$MONITORCTL" enable log crasher_app
"$MONITORCTL" list

"$MONITORD" 2>"$sandbox/monitord.log" &
agent=$!
until "$MONITORCTL" status >/dev/null 2>&1; do
    kill -0 "$agent" || { cat "$sandbox/monitord.log"; exit 1; }
    sleep 0.05
done

echo "# the application logs a crash"
echo "INFO:root:Crashing in 1" >>"$sandbox/crasher.log"
echo "ERROR:root:Crashing..." >>"$sandbox/crasher.log"

echo "# monitorctl alerts --follow (CRITICAL now, OK 2 s after the last ERROR line)"
exec 3< <("$MONITORCTL" alerts --follow)
follower=$!
while read -r line <&3; do
    echo "$line"
    case "$line" in *" OK "*) break ;; esac
done
kill "$follower"
"$MONITORCTL" status
