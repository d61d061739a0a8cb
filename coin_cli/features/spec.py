"""The feature set: each feature defined once (kind, window, warm-up, observation scale).

Both implementations (offline.py, vectorised; online.py, incremental) compute every feature from
the same few running (prefix) sums of per-bar series, with the same floating-point operations in
the same order, so they agree to the last bit on any machine where numpy's `log` of an array and of
a scalar agree (they use the same inner loop):

    r    = log(close_t / close_{t-1})           (0 on the first row)
    L    = cumsum(r)                            log price relative to the first bar
    Q    = cumsum(r * r)                        for realised volatility
    A    = cumsum(|r|)                          gross movement, for RSI
    M    = cumsum(L)                            for the moving average of log price
    X    = cumsum(x), X2 = cumsum(x * x)        x = log1p(volume), for the volume z-score
    N    = cumsum(r != 0), C = cumsum(volume_t != volume_{t-1})   exact integer counts

Window sums are prefix differences, so a feature at bar t uses only bars <= t and forgets bars
older than its window exactly (finite memory: the warm-up is exact, not a decay). A window with no
movement at all (zero-volume, flat bars) is detected with the integer counts, never with a float
threshold, so near-zero noise can never flip a result between the two implementations.

Rows are taken as they come: a gap in the data (exchange maintenance) is one step, as it will be
for the runtime, which fills only gaps that the exchange can fill.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from coin_cli.config import FeaturesConfig

KINDS = ("ret", "vol", "rsi", "ma_dist", "volz", "range")

# Observation scaling per kind (multiplier, centre): brings every feature to order one for a
# neural network. Part of the spec, so part of the implementation hash.
OBS_SCALE: dict[str, tuple[float, float]] = {
    "ret": (100.0, 0.0),       # log return in percent
    "vol": (100.0, 0.0),       # per-bar realised volatility in percent
    "rsi": (0.02, 50.0),       # 0..100 -> -1..1
    "ma_dist": (0.25, 0.0),    # distance in per-bar volatility units
    "volz": (1.0, 0.0),        # already a z-score
    "range": (100.0, 0.0),     # log(high / low) in percent
}
OBS_CLIP = 10.0

_IMPLEMENTATION_FILES = ("spec.py", "offline.py", "online.py")


@dataclass(frozen=True)
class FeatureDef:
    """One feature: `kind` with `window` bars (the horizon of a return, the period of RSI)."""

    kind: str
    window: int

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown feature kind {self.kind!r} (one of {', '.join(KINDS)})")
        if self.window < 1:
            raise ValueError(f"feature {self.kind}: window must be >= 1, got {self.window}")

    @property
    def name(self) -> str:
        return "range" if self.kind == "range" else f"{self.kind}_{self.window}"

    @property
    def warmup(self) -> int:
        """Index of the first row with a value (rows before it are NaN)."""
        return 0 if self.kind == "range" else self.window

    @property
    def obs_scale(self) -> tuple[float, float]:
        return OBS_SCALE[self.kind]


@dataclass(frozen=True)
class FeatureSpec:
    features: tuple[FeatureDef, ...] = field(default_factory=lambda: _defaults())

    def __post_init__(self) -> None:
        if not self.features:
            raise ValueError("a feature spec needs at least one feature")
        names = [f.name for f in self.features]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate features: {', '.join(duplicates)}")

    @classmethod
    def default(cls) -> FeatureSpec:
        return cls()

    @classmethod
    def from_config(cls, config: FeaturesConfig) -> FeatureSpec:
        return cls(_build(config.return_horizons, config.vol_windows, config.rsi_period,
                          config.ma_window, config.volume_window))

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def warmup(self) -> int:
        """Rows before every feature has a value: the first fully valid row index."""
        return max(f.warmup for f in self.features)

    @property
    def max_lag(self) -> int:
        """How many past prefix values the online engine must keep."""
        return max(f.window for f in self.features) + 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": [{"name": f.name, **asdict(f), "warmup": f.warmup,
                          "obs_scale": f.obs_scale[0], "obs_centre": f.obs_scale[1]} for f in self.features],
            "obs_clip": OBS_CLIP,
        }

    def implementation_hash(self) -> str:
        """sha256 of the parameters and of the feature code: a model trained on one feature set
        can never be run on another."""
        digest = hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode())
        here = Path(__file__).resolve().parent
        for name in _IMPLEMENTATION_FILES:
            digest.update(name.encode())
            digest.update((here / name).read_bytes())
        return digest.hexdigest()


def _build(horizons: Iterable[int], vol_windows: Iterable[int], rsi_period: int, ma_window: int,
           volume_window: int) -> tuple[FeatureDef, ...]:
    defs = [FeatureDef("ret", h) for h in dict.fromkeys(horizons)]
    defs += [FeatureDef("vol", w) for w in dict.fromkeys(vol_windows)]
    defs += [FeatureDef("rsi", rsi_period), FeatureDef("ma_dist", ma_window),
             FeatureDef("volz", volume_window), FeatureDef("range", 1)]
    return tuple(defs)


def _defaults() -> tuple[FeatureDef, ...]:
    return _build([1, 4, 24], [24, 168], 14, 48, 48)


def feature_manifest(spec: FeatureSpec | None = None) -> dict[str, Any]:
    """What `feature_manifest.json` holds: the spec, its warm-up and the implementation hash."""
    spec = spec or FeatureSpec.default()
    return {
        "names": spec.names,
        "warmup": spec.warmup,
        "spec": spec.to_dict(),
        "implementation_hash": spec.implementation_hash(),
    }
