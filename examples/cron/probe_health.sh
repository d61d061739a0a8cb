#!/usr/bin/env bash
# Health check for cron: run the readiness probe (`coin train --probe`) and alert on Telegram when
# it is blocked or fails. Quiet when everything is ready (set NOTIFY_OK=1 for a silent "ok" message).
#
#   0 6 * * *  COIN_HOME=/srv/coin /srv/coin/examples/cron/probe_health.sh >> /var/log/coin-probe.log 2>&1
#
# Environment: COIN_HOME, COIN (as in daily_candles.sh), SYMBOL and INTERVAL (optional: probe
# this dataset instead of the configured one), NOTIFY_OK, TELEGRAM_BOT_TOKEN, TELEGRAM_CHAT_ID.
set -uo pipefail

COIN_HOME="${COIN_HOME:-$(cd "$(dirname "$0")/../.." && pwd)}"
COIN="${COIN:-$COIN_HOME/.venv/bin/coin}"
cd "$COIN_HOME" || exit 2

args=(train --probe)
[ -n "${SYMBOL:-}" ] && args+=(--symbol "$SYMBOL")
[ -n "${INTERVAL:-}" ] && args+=(--interval "$INTERVAL")

output="$("$COIN" "${args[@]}" 2>&1)"
status=$?
printf '%s\n' "$output"
run_id="$(printf '%s\n' "$output" | tail -n 1)"

case "$status" in
  0)
    if [ "${NOTIFY_OK:-0}" = 1 ]; then
      "$COIN" notify --code PROBE_OK --silent "readiness probe passed ($run_id)" >/dev/null
    fi
    exit 0 ;;
  5) code=PROBE_BLOCKED; what="the readiness probe is blocked: see runs/$run_id/train_manifest.json" ;;
  *) code=PROBE_FAILED; what="coin train --probe failed (exit $status), run $run_id" ;;
esac

printf '%s\n\n%s\n' "$what" "$(printf '%s\n' "$output" | tail -n 30)" \
  | "$COIN" notify --stdin --code "$code" --parse-mode none \
  || echo "coin notify exit $? (the alert is kept in the outbox when Telegram was unreachable)" >&2
exit "$status"
