"""Online features: O(1) per closed candle, no re-computation over a window.

The engine keeps the running prefix sums of spec.py and a ring of their last `max_lag` values;
every formula is the twin of the one in offline.py (same operations, same order), which is what
makes the two agree bit for bit.

Speed (the runtime calls this 100k times a second): once every feature is warm, `update` runs a
straight-line function generated for the spec at construction (`_compile_ready`): no loop over
the features, no per-feature branches, one dict display for the result. The warm-up bars take
the generic loop (`_update_warming`). Both write the same ring, so they can hand over at any bar.

`log`/`log1p` are math's when they give the same bits as numpy's array loops (the offline path)
on a probe of values -- true wherever numpy falls back to the C library (this machine) -- and
numpy's scalar ufuncs otherwise (e.g. numpy's own SIMD loops on AVX-512): math's cost ~50 ns a
call, numpy's on a Python float ~700 ns. Either way the online/offline gap is far below the
1e-9 parity tolerance; with the probe it stays bit-identical.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from coin_cli.errors import DataError
from coin_cli.features.spec import FeatureSpec

_NAN = float("nan")
_INF = float("inf")
_KIND_CODE = {"ret": 0, "vol": 1, "rsi": 2, "ma_dist": 3, "volz": 4, "range": 5}
# Positions of the running sums in a ring entry (one tuple per bar; then the close and the volume).
_L, _Q, _A, _M, _X, _X2, _N, _C = range(8)


def _scalar_funcs() -> tuple[Callable[[float], float], Callable[[float], float]]:
    """(log, log1p) for Python floats that match numpy's array results bit for bit."""
    probe = np.exp(np.linspace(-0.3, 0.3, 4001))            # price ratios around 1
    volumes = np.concatenate([np.geomspace(1e-8, 1e12, 3001), [0.0, 1.0, 2.0]])
    same_log = np.array_equal(np.log(probe), np.array([math.log(v) for v in probe.tolist()]))
    same_log1p = np.array_equal(np.log1p(volumes), np.array([math.log1p(v) for v in volumes.tolist()]))
    np_log, np_log1p = np.log, np.log1p
    log = math.log if same_log else (lambda v: float(np_log(v)))
    log1p = math.log1p if same_log1p else (lambda v: float(np_log1p(v)))
    return log, log1p


_log, _log1p = _scalar_funcs()


class OnlineFeatureEngine:
    """`update(candle)` with each closed candle in order -> {name: value} (NaN during warm-up).

    `update_values(close, high, low, volume, open_time=None)` is the same for a candle given as
    floats (the runtime's hot path; `open_time` only names the bar in an error). It is generated
    for the spec (see `_compile_update`) and set on the instance.

    `outputs` limits the returned mapping to those feature names (a consumer that reads one
    feature need not pay for ten); the running sums, the warm-up and every value returned are
    the same as with the whole spec."""

    def __init__(self, spec: FeatureSpec | None = None, outputs: Iterable[str] | None = None):
        self.spec = spec or FeatureSpec.default()
        self.names: list[str] = self.spec.names
        self.warmup: int = self.spec.warmup
        plan = [(_KIND_CODE[f.kind], f.window, f.warmup, f.name) for f in self.spec.features]
        if outputs is not None:
            wanted = set(outputs)
            unknown = sorted(wanted - set(self.names))
            if unknown:
                raise ValueError(f"unknown feature output(s) {', '.join(unknown)} (features: {', '.join(self.names)})")
            plan = [step for step in plan if step[3] in wanted]
        self.outputs: list[str] = [step[3] for step in plan]
        self._plan = plan
        self._size = self.spec.max_lag
        # One tuple of running sums per bar, appended, newest last: `ring[-1 - w]` is the bar `w`
        # back. Trimmed to the last `_size` entries now and then (the generated code holds it).
        self._ring: list[tuple[Any, ...]] = []
        self.count = 0
        self.update_values: Callable[..., dict[str, float]] = _compile_update(self)

    def reset(self) -> None:
        self.count = 0
        self._ring.clear()

    @property
    def ready(self) -> bool:
        """True once every feature has a value."""
        return self.count > self.warmup

    def update(self, candle: Mapping[str, Any]) -> dict[str, float]:
        return self.update_values(float(candle["close"]), float(candle["high"]), float(candle["low"]),
                                  float(candle["volume"]), candle.get("open_time"))

    def _update_warming(self, close: float, high: float, low: float, volume: float) -> dict[str, float]:
        """Any bar, one feature at a time (the warm-up bars; the generated code does the rest)."""
        t = self.count
        ring = self._ring
        if t == 0:
            r = 0.0
            L0 = Q0 = A0 = M0 = X0 = X20 = 0.0
            N = C = 0
        else:
            L0, Q0, A0, M0, X0, X20, N, C, prev_close, prev_volume = ring[-1]
            r = _log(close / prev_close)
            N += r != 0.0
            C += volume != prev_volume
        L = L0 + r
        Q = Q0 + r * r
        A = A0 + abs(r)
        M = M0 + L
        x = _log1p(volume)
        X = X0 + x
        X2 = X20 + x * x
        ring.append((L, Q, A, M, X, X2, N, C, close, volume))
        self.count = t + 1

        out: dict[str, float] = {}
        for code, w, warm, name in self._plan:
            if t < warm:
                out[name] = _NAN
                continue
            if code == 5:
                out[name] = _log(high / low)
                continue
            b = ring[-1 - w]
            still = N - b[_N] == 0
            if code == 0:
                out[name] = L - b[_L]
            elif code == 1:
                out[name] = 0.0 if still else math.sqrt((Q - b[_Q]) / w)
            elif code == 2:
                gross = A - b[_A]
                if still or gross <= 0.0:
                    out[name] = 50.0
                else:  # rounding can leave the ratio a hair outside [-1, 1]
                    out[name] = min(max(50.0 * (1.0 + (L - b[_L]) / gross), 0.0), 100.0)
            elif code == 3:
                mean = (M - b[_M]) / w
                vol = math.sqrt((Q - b[_Q]) / w)
                out[name] = 0.0 if still or vol <= 0.0 else (L - mean) / vol
            else:
                mean = (X - b[_X]) / w
                var = (X2 - b[_X2]) / w - mean * mean
                std = math.sqrt(max(var, 0.0))
                flat = C - ring[-w][_C] == 0
                out[name] = 0.0 if flat or std <= 0.0 else (x - mean) / std
        return out


def _reject(open_time: Any, close: float, high: float, low: float, volume: float) -> None:
    for name, value, positive in (("close", close, True), ("high", high, True), ("low", low, True),
                                  ("volume", volume, False)):
        if not math.isfinite(value) or (value <= 0.0 if positive else value < 0.0):
            need = "a positive number" if positive else "a non-negative number"
            raise DataError(f"candle open_time {open_time}: {name} is {value!r}, features need {need}")


# ---- the generated update --------------------------------------------------------------------------

# One expression per kind, the same operations in the same order as _update_warming (and offline.py).
# `b` is the ring entry `w` bars back, `c` the one `w - 1` bars back (volz's volume-change count).
_FEATURE_CODE = {
    0: "    {v} = L - {b}[0]",
    1: "    {v} = 0.0 if N - {b}[6] == 0 else _sqrt((Q - {b}[1]) / {w})",
    2: ("    g = A - {b}[2]\n"
        "    if N - {b}[6] == 0 or g <= 0.0:\n"
        "        {v} = 50.0\n"
        "    else:\n"
        "        {v} = 50.0 * (1.0 + (L - {b}[0]) / g)\n"
        "        {v} = 0.0 if {v} < 0.0 else (100.0 if {v} > 100.0 else {v})"),
    3: ("    vol = _sqrt((Q - {b}[1]) / {w})\n"
        "    {v} = 0.0 if N - {b}[6] == 0 or vol <= 0.0 else (L - (M - {b}[3]) / {w}) / vol"),
    4: ("    mean = (X - {b}[4]) / {w}\n"
        "    var = (X2 - {b}[5]) / {w} - mean * mean\n"
        "    std = _sqrt(var if var > 0.0 else 0.0)\n"
        "    {v} = 0.0 if C - {c}[7] == 0 or std <= 0.0 else (x - mean) / std"),
    5: "    {v} = _log(high / low)",
}
# The running sums each kind's code reads (M is a sum of L, so it needs L too).
_SUMS_READ: dict[int, set[str]] = {0: {"L"}, 1: {"Q", "N"}, 2: {"A", "L", "N"}, 3: {"M", "L", "Q", "N"},
                                   4: {"X", "X2", "C"}, 5: set()}


def _compile_update(engine: OnlineFeatureEngine) -> Callable[..., dict[str, float]]:
    """`update_values` for this engine: checks the candle, hands warm-up bars to the generic
    loop, and computes every feature of a warm bar in straight-line code for this spec."""
    size = engine._size
    warm_from = max(engine.warmup, 1)   # the straight-line path needs a previous bar
    lags = sorted({w for code, w, _warm, _name in engine._plan if code != 5}
                  | {w - 1 for code, w, _warm, _name in engine._plan if code == 4})
    # Only the running sums the outputs read are advanced (a sum nobody reads keeps its last value).
    need = set().union(*(_SUMS_READ[code] for code, _w, _warm, _name in engine._plan))
    step = {
        "r": "    r = _log(close / prev_close)",
        "N": "    if r != 0.0:\n        N += 1",
        "C": "    if volume != prev_volume:\n        C += 1",
        "L": "    L = L + r",
        "Q": "    Q = Q + r * r",
        "A": "    A = A + (r if r >= 0.0 else -r)",   # abs() without the call; the sums are the same
        "M": "    M = M + L",
        "x": "    x = _log1p(volume)",
        "X": "    X = X + x",
        "X2": "    X2 = X2 + x * x",
    }
    if need & {"L", "Q", "A", "M", "N"}:
        need.add("r")
    if need & {"X", "X2"}:
        need.add("x")
    lines = [
        "def update_values(close, high, low, volume, open_time=None):",
        # NaN fails every comparison: one chained test rejects NaN, inf and non-positive values.
        "    if not (0.0 < close < _INF and 0.0 < high < _INF and 0.0 < low < _INF and 0.0 <= volume < _INF):",
        "        _reject(open_time, close, high, low, volume)",
        f"    if engine.count < {warm_from}:",
        "        return warming(close, high, low, volume)",
        "    L, Q, A, M, X, X2, N, C, prev_close, prev_volume = ring[-1]",
        *(code for key, code in step.items() if key in need),
        "    append((L, Q, A, M, X, X2, N, C, close, volume))",
        "    engine.count += 1",
        f"    if len(ring) > {4 * size + 256}:",
        f"        del ring[:-{size}]",
    ]
    lines += [f"    b{w} = ring[{-1 - w}]" for w in lags]
    results = []
    for i, (code, w, _warm, name) in enumerate(engine._plan):
        lines.append(_FEATURE_CODE[code].format(v=f"f{i}", b=f"b{w}", c=f"b{w - 1}", w=float(w)))
        results.append(f"{name!r}: f{i}")
    lines.append("    return {" + ", ".join(results) + "}")
    ring = engine._ring
    scope: dict[str, Any] = {"engine": engine, "ring": ring, "append": ring.append, "warming": engine._update_warming,
                             "_log": _log, "_log1p": _log1p, "_sqrt": math.sqrt, "_INF": _INF, "_reject": _reject}
    exec(compile("\n".join(lines), "<online features>", "exec"), scope)
    return scope["update_values"]
