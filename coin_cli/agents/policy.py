"""The Policy protocol: what every strategy (baselines, SB3 models) offers the env and the runtime.

A policy looks at the latest bar (its features by name, and the env observation vector when the
caller has one) plus the position, and answers a target weight: the share of equity to hold in
the base asset, in [0, 1] on spot (or [-1, 1] when shorting is allowed). NaN means "no opinion":
the execution model then keeps the position as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True, slots=True)
class PolicyInput:
    features: Mapping[str, float]
    """The latest bar's features by name (NaN during warm-up)."""
    observation: np.ndarray | None = None
    """The env observation vector (coin_cli.env.observation layout), when the caller builds one."""
    position_weight: float = 0.0
    """Value of the position / equity, marked at the latest close."""
    equity: float = float("nan")
    drawdown: float = 0.0
    """1 - equity / peak equity."""
    open_time: int | None = None
    """Open time (ms) of the bar whose close the decision is taken on."""


@runtime_checkable
class Policy(Protocol):
    name: str

    def act(self, inp: PolicyInput) -> float:
        """Target weight for the next bar's open."""
        ...
