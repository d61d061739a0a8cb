"""Time-ordered train / validation / test splits with embargo gaps, and walk-forward folds.

Positions are row indices into the candle table; `[start, end)` is the range of bars whose close
the agent acts on. Ranges never overlap and are separated by `embargo` bars, so a reward that
looks one bar ahead (or a feature computed over a window) cannot carry information from one
split into the next.

Walk-forward: the last `test_fraction` of the usable rows is cut into `folds` consecutive test
blocks. Fold k validates on the `val_fraction` block just before its test block and trains on
everything before that (an expanding window). With one fold this is the plain split.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from coin_cli.errors import DataError, UsageError

MIN_SPLIT_BARS = 32


@dataclass(frozen=True)
class Span:
    start: int
    end: int

    @property
    def bars(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Fold:
    index: int
    train: Span
    val: Span
    test: Span

    def to_dict(self) -> dict[str, dict[str, int]]:
        return {name: {**asdict(span), "bars": span.bars} for name, span in
                (("train", self.train), ("val", self.val), ("test", self.test))}


def walk_forward(
    n_rows: int,
    first_valid: int,
    *,
    val_fraction: float,
    test_fraction: float,
    embargo: int,
    folds: int = 1,
    min_train: int = MIN_SPLIT_BARS,
    min_eval: int = MIN_SPLIT_BARS,
) -> list[Fold]:
    """The folds for `n_rows` candles whose features are valid from row `first_valid` on."""
    if folds < 1:
        raise UsageError(f"--folds: expected a whole number >= 1, got {folds}")
    usable = n_rows - first_valid
    test_total = round(usable * test_fraction)
    val_bars = round(usable * val_fraction)
    block = test_total // folds
    # later blocks absorb the remainder so the last test block ends at the last row
    first_test = n_rows - test_total
    result: list[Fold] = []
    for k in range(folds):
        test_start = first_test + k * block
        test_end = n_rows if k == folds - 1 else test_start + block
        val_end = test_start - embargo
        val_start = val_end - val_bars
        train_end = val_start - embargo
        fold = Fold(k, Span(first_valid, train_end), Span(val_start, val_end), Span(test_start, test_end))
        problem = _too_small(fold, min_train, min_eval)
        if problem:
            message = (f"{n_rows} candles ({usable} after the {first_valid}-bar feature warm-up) are too few for "
                       f"{folds} fold(s) with val_fraction={val_fraction}, test_fraction={test_fraction}, "
                       f"embargo_bars={embargo}: fold {k} {problem}")
            raise (UsageError(message + "; use fewer --folds") if folds > 1 else DataError(message))
        result.append(fold)
    return result


def _too_small(fold: Fold, min_train: int, min_eval: int) -> str | None:
    if fold.train.bars < min_train:
        return f"has {max(fold.train.bars, 0)} training bars (need {min_train})"
    if fold.val.bars < min_eval:
        return f"has {max(fold.val.bars, 0)} validation bars (need {min_eval})"
    if fold.test.bars < min_eval:
        return f"has {max(fold.test.bars, 0)} test bars (need {min_eval})"
    return None
