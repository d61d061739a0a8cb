"""Baseline policies: VolTarget, BuyAndHold, Flat (constructible from settings.policy)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from coin_cli.agents.policy import Policy, PolicyInput
from coin_cli.errors import UsageError

if TYPE_CHECKING:
    from coin_cli.config import Settings

MS_PER_YEAR = 365.0 * 24 * 3600 * 1000
BASELINES = ("voltarget", "buyhold", "flat")


class Flat:
    name = "flat"
    feature_inputs: tuple[str, ...] = ()   # the features act reads (the runtime computes only those)

    def act(self, inp: PolicyInput) -> float:
        return 0.0

    def act_row(self, features: Mapping[str, float], position_weight: float) -> float:
        return 0.0


class BuyAndHold:
    name = "buyhold"
    feature_inputs: tuple[str, ...] = ()

    def __init__(self, weight: float = 1.0):
        self.weight = weight

    def act(self, inp: PolicyInput) -> float:
        return self.weight

    def act_row(self, features: Mapping[str, float], position_weight: float) -> float:
        return self.weight

    @classmethod
    def from_settings(cls, settings: Settings) -> BuyAndHold:
        return cls(settings.policy.max_weight)


class VolTarget:
    """weight = target annualised volatility / realised annualised volatility, clipped to
    [0, max_weight]. Realised volatility is the per-bar feature `vol_feature` scaled by
    sqrt(bars per year). Flat while the feature is still warming up (NaN); full weight when the
    market has not moved at all over the window (vol 0). While the target is within
    `rebalance_band` of the current position weight it answers the position weight itself, so
    the position is kept instead of being nudged (and charged fees) on every bar."""

    name = "voltarget"

    def __init__(self, target_vol: float = 0.5, vol_feature: str = "vol_24", max_weight: float = 1.0,
                 bars_per_year: float = 8760.0, rebalance_band: float = 0.0):
        if target_vol <= 0 or bars_per_year <= 0:
            raise ValueError("target_vol and bars_per_year must be positive")
        self.target_vol = target_vol
        self.vol_feature = vol_feature
        self.max_weight = max_weight
        self.bars_per_year = bars_per_year
        self.rebalance_band = rebalance_band
        self._annualise = math.sqrt(bars_per_year)

    @property
    def feature_inputs(self) -> tuple[str, ...]:
        """The features `act` reads (the runtime computes only those per bar)."""
        return (self.vol_feature,)

    @classmethod
    def from_settings(cls, settings: Settings) -> VolTarget:
        from coin_cli.data.schema import interval_ms

        p = settings.policy
        return cls(p.target_vol, p.vol_feature, p.max_weight, MS_PER_YEAR / interval_ms(settings.data.interval),
                   p.rebalance_band)

    def act(self, inp: PolicyInput) -> float:
        return self.act_row(inp.features, inp.position_weight)

    def act_row(self, features: Mapping[str, float], position_weight: float) -> float:
        """`act` from the two things it reads (the runtime's per-bar path: no PolicyInput)."""
        vol = features.get(self.vol_feature, math.nan)
        if vol != vol:
            return 0.0
        max_weight = self.max_weight
        if vol <= 0.0:
            target = max_weight
        else:
            target = self.target_vol / (vol * self._annualise)
            if target > max_weight:
                target = max_weight
        band = self.rebalance_band
        if band > 0.0 and position_weight > 0.0 and -band <= target - position_weight <= band:
            return position_weight
        return target


def baseline_from_settings(name: str, settings: Settings) -> Policy:
    """`voltarget`, `buyhold` or `flat`, configured from settings.policy."""
    if name == "voltarget":
        policy = VolTarget.from_settings(settings)
        names = _feature_names(settings)
        if policy.vol_feature not in names:
            raise UsageError(f"policy.vol_feature: {policy.vol_feature!r} is not a feature "
                             f"(features: {', '.join(names)})")
        return policy
    if name == "buyhold":
        return BuyAndHold.from_settings(settings)
    if name == "flat":
        return Flat()
    raise UsageError(f"unknown baseline policy {name!r} (one of {', '.join(BASELINES)})")


def _feature_names(settings: Settings) -> list[str]:
    from coin_cli.features.spec import FeatureSpec

    return FeatureSpec.from_config(settings.features).names
