"""The fake's trading account and Binance's request signing (binance.md §1 "Signing").

REST: the signed payload is the query string as sent concatenated (no separator) with the body as
sent, with the `signature` parameter taken out; HMAC-SHA256 hex with the account's secret, any hex
case. `X-MBX-APIKEY` names the account. `timestamp` is checked against the fake's clock
(`fake.set_clock(offset_ms=...)` skews it): ahead by >= 1000 ms or older than `recvWindow`
(default 5000, max 60000) gives -1021. WS API: every param but `signature`, sorted, `k=v&...`.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tests.fakes.binance.server import ApiError, FakeBinance

ZERO = Decimal(0)


@dataclass
class Account:
    api_key: str
    api_secret: str
    balances: dict[str, list[Decimal]] = field(default_factory=dict)   # asset -> [free, locked]
    commission_rate: Decimal = Decimal("0.001")                         # taker = maker here
    commission_asset: str | None = None    # None: the asset received (Binance's default); e.g. "BNB"
    commission_asset_price: Decimal = Decimal("300")   # quote per unit of commission_asset
    update_time: int = 0

    def free(self, asset: str) -> Decimal:
        return self.balances.get(asset, [ZERO, ZERO])[0]

    def move(self, asset: str, free: Decimal = ZERO, locked: Decimal = ZERO) -> None:
        entry = self.balances.setdefault(asset, [ZERO, ZERO])
        entry[0] += free
        entry[1] += locked

    def snapshot(self) -> dict[str, tuple[Decimal, Decimal]]:
        return {a: (f, lk) for a, (f, lk) in self.balances.items()}


def setup_account(fake: FakeBinance, api_key: str = "fake-key", api_secret: str = "fake-secret",
                  balances: dict[str, str | Decimal] | None = None, commission_rate: str = "0.001",
                  commission_asset: str | None = None) -> Account:
    """The account a client signs for (one per fake). Balances are free amounts."""
    account = Account(api_key, api_secret, {a: [Decimal(str(v)), ZERO] for a, v in (balances or {}).items()},
                      Decimal(commission_rate), commission_asset)
    fake.state["account"] = account
    return account


def get_account(fake: FakeBinance) -> Account:
    account = fake.state.get("account")
    if account is None:
        account = setup_account(fake)
    return account


def hmac_hex(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def _without_signature(raw: str) -> tuple[str, str | None]:
    parts, signature = [], None
    for part in raw.split("&") if raw else []:
        if part.startswith("signature="):
            signature = part.removeprefix("signature=")
        else:
            parts.append(part)
    return "&".join(parts), signature


def check_timestamp(fake: FakeBinance, params: dict[str, Any]) -> None:
    try:
        timestamp = int(params["timestamp"])
    except KeyError:
        raise ApiError(400, -1102,
                       "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.") from None
    except ValueError:
        raise ApiError(400, -1100, "Illegal characters found in parameter 'timestamp'; "
                       "legal range is '^[0-9]{1,20}$'.") from None
    if timestamp > 10**14:  # microseconds
        timestamp //= 1000
    window = Decimal(str(params.get("recvWindow", "5000")))
    if window > 60000:
        raise ApiError(400, -1131, "recvWindow must be less than 60000")
    now = fake.server_time_ms()
    if timestamp >= now + 1000:
        raise ApiError(400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    if now - timestamp > window:
        raise ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")


async def verify_rest(fake: FakeBinance, request: Any, params: dict[str, str]) -> Account:
    """Check a SIGNED REST request as Binance does; the account it is signed for."""
    account = get_account(fake)
    key = request.headers.get("X-MBX-APIKEY")
    if not key:
        raise ApiError(401, -2014, "API-key format invalid.")
    if key != account.api_key:
        raise ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
    query, sig_q = _without_signature(request.rel_url.raw_query_string)
    body, sig_b = _without_signature(await request.text())
    signature = sig_q or sig_b
    if signature is None:
        raise ApiError(400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
    if not hmac.compare_digest(signature.lower(), hmac_hex(account.api_secret, query + body)):
        raise ApiError(400, -1022, "Signature for this request is not valid.")
    check_timestamp(fake, params)
    return account


def verify_ws(fake: FakeBinance, params: dict[str, Any]) -> Account:
    """Check a signed WS-API request's params (apiKey, timestamp, signature)."""
    account = get_account(fake)
    if params.get("apiKey") != account.api_key:
        raise ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
    payload = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "signature")
    if not hmac.compare_digest(str(params.get("signature", "")).lower(), hmac_hex(account.api_secret, payload)):
        raise ApiError(400, -1022, "Signature for this request is not valid.")
    check_timestamp(fake, params)
    return account
