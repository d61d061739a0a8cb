"""The bars a run starts from: the candles a replay runs over, and the warm-up that feeds the
feature engine before the first traded bar (and, on a restart, every bar the ledger processed)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from coin_cli.errors import DataError

if TYPE_CHECKING:
    from coin_cli.config import Settings
    from coin_cli.runtime.build import TradeRequest
    from coin_cli.runtime.sources import CandleArrays
    from coin_cli.runtime.state import Checkpoint

log = logging.getLogger("coin.runtime")


def load_replay_candles(settings: Settings, request: TradeRequest) -> tuple[CandleArrays, dict[str, Any]]:
    """The candles a replay runs over: --from/--to from the store (with the bars before --from,
    which warm the features; a resumed ledger re-warms on them too), else load_or_bootstrap."""
    from coin_cli.data.service import load_or_bootstrap, store_for
    from coin_cli.runtime.sources import CandleArrays

    d = settings.data
    info: dict[str, Any] = {"generated": False}
    if request.start_ms is None and request.end_ms is None:
        frame, manifest, generated = load_or_bootstrap(settings)
        info.update(generated=generated, source=manifest.get("source"))
    else:  # from the store's start: the bars before --from warm the features
        store = store_for(settings)
        frame = store.read(d.symbol, d.interval, None, request.end_ms)
        info["source"] = (store.manifest(d.symbol, d.interval) or {}).get("source")
    arrays = CandleArrays.from_frame(frame)
    del frame
    if len(arrays) == 0:
        raise DataError(f"no {d.symbol} {d.interval} candles in {settings.paths.data_dir} for the requested range")
    info["rows"] = len(arrays)
    return arrays, info


def warm_up(features: Any, obs_window: Any, arrays: CandleArrays, first_traded: int | None, ready: int,
             cp: Checkpoint | None) -> int | None:
    """Feed the feature engine the `ready` stored bars before the first bar the ledger trades, then
    every bar the ledger already processed (a restart); returns the next expected open."""
    import numpy as np

    if first_traded is None:  # a replay from the store's first bar: TradingEnv's own warm-up
        return None
    i = int(np.searchsorted(arrays.open_time, first_traded, side="left"))
    candles = arrays.candles(max(0, i - ready), i)
    if cp is not None and cp.last_bar is not None and cp.first_bar is not None:
        done = arrays.candles(i, int(np.searchsorted(arrays.open_time, cp.last_bar, side="right")))
        if not done or done[-1].open_time != cp.last_bar or done[0].open_time != cp.first_bar:
            raise DataError(f"the state file's bars {cp.first_bar}..{cp.last_bar} are not all in the candle data any "
                            "more; cannot rebuild the features it decided on")
        if len(done) != cp.bars:
            log.warning("re-warming features over %d stored candles, the ledger processed %d bars", len(done), cp.bars)
        candles += done
    update = features.update
    for c in candles:
        row = update(c)
        if obs_window is not None:
            obs_window.push(row)
    return candles[-1].close_time + 1 if candles else first_traded
