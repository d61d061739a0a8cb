"""Market events that flow from a source, through the asyncio queue, to the consumer.

A `Candle` is deliberately a tiny slotted object (not a dataclass or a dict): the replay creates
one per bar and the consumer handles 100k of them a second. It answers `candle["close"]` so the
OnlineFeatureEngine can read it as the Mapping its contract names.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


class Candle:
    """One kline. `closed` is False for an in-progress kline from a live stream (`k.x == false`)."""

    __slots__ = ("close", "close_time", "closed", "high", "low", "open", "open_time", "volume")

    _KEYS = ("open_time", "open", "high", "low", "close", "volume", "close_time")

    def __init__(self, open_time: int, open: float, high: float, low: float, close: float, volume: float,
                 close_time: int, closed: bool = True) -> None:
        self.open_time = open_time
        self.open = open
        self.high = high
        self.low = low
        self.close = close
        self.volume = volume
        self.close_time = close_time
        self.closed = closed

    # The Mapping face the feature engine reads: `candle["close"]` is the attribute lookup itself
    # (a C call, 4x cheaper than a Python __getitem__; an unknown key raises AttributeError).
    __getitem__ = object.__getattribute__

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    def keys(self) -> tuple[str, ...]:
        return self._KEYS

    def __iter__(self) -> Iterator[str]:
        return iter(self._KEYS)

    def __len__(self) -> int:
        return len(self._KEYS)

    def __contains__(self, key: object) -> bool:
        return key in self._KEYS

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self._KEYS}

    def __repr__(self) -> str:
        return (f"Candle(open_time={self.open_time}, o={self.open}, h={self.high}, l={self.low}, "
                f"c={self.close}, v={self.volume}, closed={self.closed})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Candle):
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    __hash__ = None  # type: ignore[assignment]


class CandleBatch:
    """Several closed candles in order: the replay hands them over in chunks so the queue costs
    nothing per bar. A live stream sends single `Candle`s.

    The batch holds COLUMNS (lists in `Candle._KEYS` order), not Candle objects: the consumer
    reads them as plain floats and ints, and building a Candle costs more than processing half
    a bar. `candles` materialises them for whoever wants objects."""

    __slots__ = ("columns",)

    def __init__(self, columns: tuple[list[Any], ...]) -> None:
        self.columns = columns

    @classmethod
    def from_candles(cls, candles: list[Candle]) -> CandleBatch:
        return cls(tuple([getattr(c, k) for c in candles] for k in Candle._KEYS))

    @property
    def candles(self) -> list[Candle]:
        return [Candle(*row) for row in zip(*self.columns, strict=True)]

    def __len__(self) -> int:
        return len(self.columns[0])


class StreamStatus:
    """A source reporting its connection state; `up=False` raises STREAM_DOWN."""

    __slots__ = ("detail", "up")

    def __init__(self, up: bool, detail: str = "") -> None:
        self.up = up
        self.detail = detail


class EndOfStream:
    """The source has nothing more (the replay range is done), or failed with `error`."""

    __slots__ = ("error", "reason")

    def __init__(self, reason: str = "end of data", error: BaseException | None = None) -> None:
        self.reason = reason
        self.error = error


class GapFilled:
    """Put by GapFiller's fill task when the missing bars are fetched: the consumer then takes
    them (and the candles held meanwhile) from `GapFiller.complete()`."""

    __slots__ = ()


class Wakeup:
    """Put by a signal handler so a consumer waiting on a quiet stream notices the stop."""

    __slots__ = ()


MarketEvent = Candle | CandleBatch | StreamStatus | EndOfStream | GapFilled | Wakeup
