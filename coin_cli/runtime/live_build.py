"""What `--mode live` needs before the ledger is touched, and `coin trade --mode live --check`.

- `require_live(settings)`: the API keys (BINANCE_API_KEY / BINANCE_API_SECRET) AND the opt-in
  (`--confirm-live` or `trade.live_enabled: true`); otherwise one UsageError (exit 2) naming
  everything that is missing. Nothing live happens without both.
- `preflight_account(...)`: GET /account over signed REST: the key can trade spot, and a new
  ledger's `env.initial_cash` is not more than the quote asset the account holds (the ledger would
  size orders the exchange must refuse). Runs before the ledger is opened: a refusal writes nothing.
- `live_check(rt)`: connect, reconcile (read only), and the facts a trader checks before going live:
  balances, filters, permissions, what the reconciliation would say. Places nothing.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from coin_cli.errors import UsageError

if TYPE_CHECKING:
    from coin_cli.config import Secrets, Settings
    from coin_cli.integrations.binance.filters import SymbolFilters
    from coin_cli.runtime.build import Runtime


def require_live(settings: Settings, secrets: Secrets | None = None) -> tuple[str, str]:
    from coin_cli.config import Secrets
    from coin_cli.integrations.binance.user_stream_service import missing_keys

    secrets = secrets or Secrets.from_env()
    missing = missing_keys(secrets)
    needs = []
    if missing:
        needs.append(f"{' and '.join(missing)} in the environment")
    if not settings.trade.live_enabled:
        needs.append("an explicit opt-in: --confirm-live (or trade.live_enabled: true)")
    if needs:
        raise UsageError(f"--mode live places real orders on Binance and needs {'; '.join(needs)}")
    return str(secrets.binance_api_key), str(secrets.binance_api_secret)


def rest_with_keys(settings: Settings, keys: tuple[str, str], budget: Any = None) -> Any:
    from coin_cli.integrations.binance.rest import BinanceRESTClient

    b = settings.binance
    return BinanceRESTClient(b.api_url, timeout=b.timeout, max_retries=b.max_retries, budget=budget,
                             api_key=keys[0], api_secret=keys[1])


def preflight_account(settings: Settings, keys: tuple[str, str], filters: SymbolFilters, new_ledger: bool) -> dict:
    from coin_cli.integrations.binance.trading import BinanceTradingClient, balances

    async def fetch() -> dict[str, Any]:
        async with rest_with_keys(settings, keys) as rest:
            return await BinanceTradingClient(rest, settings.binance.recv_window).account()

    account = asyncio.run(fetch())
    if account.get("canTrade") is False:
        raise UsageError(f"{settings.binance.api_url}: this API key cannot trade (canTrade false): "
                         "enable spot trading for the key")
    held = balances(account)
    free_quote = held.get(filters.quote_asset, (0.0, 0.0))[0]
    cash = settings.env.initial_cash
    if new_ledger and free_quote < cash:
        raise UsageError(f"env.initial_cash {cash:,.2f} {filters.quote_asset} is more than the account holds free "
                         f"({free_quote:,.8f} {filters.quote_asset}): lower env.initial_cash or fund the account")
    return account


def account_summary(account: dict[str, Any], filters: SymbolFilters) -> dict[str, Any]:
    from coin_cli.integrations.binance.trading import balances

    held = balances(account)
    out: dict[str, Any] = {}
    for asset in (filters.base_asset, filters.quote_asset):
        free, locked = held.get(asset, (0.0, 0.0))
        out[f"balance.{asset}"] = f"{free:.8f} free, {locked:.8f} locked"
    out["permissions"] = ", ".join(account.get("permissions") or []) or "?"
    out["can_trade"] = account.get("canTrade")
    return out


def live_check(rt: Runtime) -> dict[str, Any]:
    """Connect and reconcile without booking anything; the facts for the 'runtime ready' table."""
    from coin_cli.integrations.binance.trading import BinanceTradingClient

    session = rt.live

    async def run() -> dict[str, Any]:
        async with rest_with_keys(session.settings, session.keys) as rest:
            session.trading = BinanceTradingClient(rest, session.settings.binance.recv_window)
            session.broker.attach(session.trading, asyncio.Queue())
            report = await session.fetch(rt, "check")
            account = await session.trading.account()
        facts = account_summary(account, session.broker.filters)
        facts["clock_offset_ms"] = rest.time_offset_ms
        facts["reconcile"] = session.describe(rt, report)
        return facts

    facts = asyncio.run(run())
    f = session.broker.filters
    facts["filters"] = (f"lot step {f.market_step}, min qty {f.market_min_qty}, tick {f.tick_size}, "
                        f"min notional {f.min_notional}{' (MARKET)' if f.min_notional_market else ''}")
    return facts
