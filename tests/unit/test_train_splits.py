"""Time-ordered splits with embargo and walk-forward folds."""

from __future__ import annotations

import itertools

import pytest

from coin_cli.errors import DataError, UsageError
from coin_cli.pipelines.splits import walk_forward


def test_single_split_is_ordered_with_embargo_gaps() -> None:
    (fold,) = walk_forward(1200, 200, val_fraction=0.15, test_fraction=0.15, embargo=24)
    assert fold.train.start == 200
    assert fold.test.end == 1200 and fold.test.bars == 150
    assert fold.val.bars == 150
    assert fold.val.start - fold.train.end == 24
    assert fold.test.start - fold.val.end == 24
    assert fold.train.end > fold.train.start


def test_walk_forward_expands_train_and_tiles_the_test_region() -> None:
    folds = walk_forward(3000, 100, val_fraction=0.1, test_fraction=0.3, embargo=10, folds=3)
    assert [f.index for f in folds] == [0, 1, 2]
    tests = [f.test for f in folds]
    assert tests[-1].end == 3000
    for prev, nxt in itertools.pairwise(tests):
        assert prev.end == nxt.start  # consecutive, no gap, no overlap
    assert sum(t.bars for t in tests) == round(2900 * 0.3)
    trains = [f.train for f in folds]
    assert all(t.start == 100 for t in trains)
    assert trains[0].end < trains[1].end < trains[2].end  # expanding window
    for f in folds:
        assert f.train.end + 10 == f.val.start and f.val.end + 10 == f.test.start
        assert f.to_dict()["test"]["bars"] == f.test.bars


def test_too_many_folds_is_a_usage_error_and_too_little_data_a_data_error() -> None:
    with pytest.raises(UsageError, match="--folds"):
        walk_forward(1000, 100, val_fraction=0.15, test_fraction=0.15, embargo=24, folds=10)
    with pytest.raises(DataError, match="too few"):
        walk_forward(200, 150, val_fraction=0.15, test_fraction=0.15, embargo=24)
    with pytest.raises(UsageError):
        walk_forward(1000, 100, val_fraction=0.15, test_fraction=0.15, embargo=24, folds=0)
