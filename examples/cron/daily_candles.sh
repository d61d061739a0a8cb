#!/usr/bin/env bash
# Daily candle download for cron; a Telegram alert (through `coin notify`) when it fails.
#
#   15 0 * * *  COIN_HOME=/srv/coin /srv/coin/examples/cron/daily_candles.sh >> /var/log/coin-candles.log 2>&1
#
# Environment: COIN_HOME (project folder with configs/ and runs/; default: this repo),
# COIN (the coin executable; default: $COIN_HOME/.venv/bin/coin), SYMBOL (BTCUSDT), INTERVAL (1m),
# DAYS_BACK (2: re-fetching yesterday is harmless, the store merges by open time),
# TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID (for the alerts).
set -uo pipefail

COIN_HOME="${COIN_HOME:-$(cd "$(dirname "$0")/../.." && pwd)}"
COIN="${COIN:-$COIN_HOME/.venv/bin/coin}"
SYMBOL="${SYMBOL:-BTCUSDT}"
INTERVAL="${INTERVAL:-1m}"
DAYS_BACK="${DAYS_BACK:-2}"
cd "$COIN_HOME" || exit 2

start="$(date -u -d "-${DAYS_BACK} days" +%Y-%m-%d)"
output="$("$COIN" data download --symbol "$SYMBOL" --interval "$INTERVAL" --start "$start" 2>&1)"
status=$?
printf '%s\n' "$output"

case "$status" in
  0) exit 0 ;;
  5) code=CANDLES_SKIPPED; what="another download of $SYMBOL $INTERVAL holds the lock (exit 5)" ;;
  3) code=CANDLES_INVALID; what="the downloaded candles did not validate (exit 3)" ;;
  4) code=CANDLES_FAILED; what="Binance was unreachable after retries (exit 4)" ;;
  *) code=CANDLES_FAILED; what="coin data download failed (exit $status)" ;;
esac

# The last 40 lines of output go with the alert (the run_id is the last one). If Telegram is down,
# `coin notify` keeps the alert in its outbox (exit 4) and the next notify sends it first.
printf '%s\n\n%s\n' "$what" "$(printf '%s\n' "$output" | tail -n 40)" \
  | "$COIN" notify --stdin --code "$code" --parse-mode none \
  || echo "coin notify exit $? (the alert is kept in the outbox when Telegram was unreachable)" >&2
exit "$status"
