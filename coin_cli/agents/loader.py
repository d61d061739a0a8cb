"""resolve_policy: a policy name from `--policy` / trade.policy -> a Policy.

`voltarget`, `buyhold`, `flat` are the baselines; anything else is a `coin train` run id under
paths.runs_dir, or a `coin train --sweep` run id, which stands for the sweep's best trial (the
one the sweep evaluated on test and put through the gate; `sweep.json` names it). A trained
model is refused (BlockedError, exit 5) when its feature implementation
hash differs from the running feature engine's, or when it did not pass the promotion gate
(unless trade.allow_unpromoted). Both checks read the run's manifests BEFORE the model is
loaded, so a mismatched or unpromoted model never costs a load.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coin_cli.agents.run_files import read_run_json
from coin_cli.errors import BlockedError, DataError, UsageError

if TYPE_CHECKING:
    from coin_cli.config import Settings

log = logging.getLogger("coin.runtime")

BASELINES = ("voltarget", "buyhold", "flat")
FEATURE_MANIFEST = "feature_manifest.json"
TRAIN_MANIFEST = "train_manifest.json"
PROBE_SUMMARY = "train_probe_summary.json"   # only a `coin train --probe` run has it
SWEEP_FILE = "sweep.json"                    # only a `coin train --sweep` run has it


def resolve_policy(name: str, settings: Settings) -> Any:
    """The Policy named `name` (see the module docstring)."""
    key = name.strip()
    if key.lower() in BASELINES:
        return _baseline(key.lower(), settings)
    if not key or "/" in key or key.startswith("."):
        raise UsageError(f"--policy {name!r}: expected one of {', '.join(BASELINES)} or a train run id")
    run_dir = model_folder(Path(settings.paths.runs_dir) / key, name)
    manifest = check_model_run(run_dir, settings)
    _trained_trade_band(run_dir, manifest, settings)
    from coin_cli.agents.sb3 import SB3Policy

    policy = SB3Policy.load(run_dir)
    policy.warnings = _symbol_warnings(run_dir, manifest, settings)
    running = running_feature_hash(settings)
    if policy.feature_hash != running:  # the manifest and the loaded model must agree too
        raise BlockedError(_hash_message(run_dir, policy.feature_hash, running))
    if not policy.promoted and not settings.trade.allow_unpromoted:
        raise BlockedError(f"{run_dir}: model status {policy.status or 'unknown'!r} is not promoted; "
                           "pass --allow-unpromoted to trade it anyway")
    return policy


def check_model_run(run_dir: Path, settings: Settings) -> dict[str, Any]:
    """The gates on a train run's manifests: a model at all (not a probe), the feature hash, the
    interval it was trained on, then promotion. Returns the train manifest."""
    if (run_dir / PROBE_SUMMARY).is_file():
        raise UsageError(f"--policy {run_dir.name}: {run_dir} is a `coin train --probe` run (a check of the data "
                         "and the env), not a trained model; train one with `coin train`")
    features = read_run_json(run_dir / FEATURE_MANIFEST)
    model_hash = features.get("implementation_hash")
    if not isinstance(model_hash, str) or not model_hash:
        raise DataError(f"{run_dir / FEATURE_MANIFEST}: implementation_hash missing")
    running = running_feature_hash(settings)
    if model_hash != running:
        raise BlockedError(_hash_message(run_dir, model_hash, running))
    manifest = read_run_json(run_dir / TRAIN_MANIFEST)
    trained_on = manifest.get("interval")
    if trained_on is not None:
        from coin_cli.data.schema import normalize_interval

        if normalize_interval(str(trained_on)) != normalize_interval(settings.data.interval):
            raise BlockedError(f"{run_dir}: the model was trained on {trained_on} candles, this run trades "
                               f"{settings.data.interval}; train one on {settings.data.interval} or pass "
                               f"--interval {trained_on}")
    status = str(manifest.get("status", ""))
    if status != "promoted":
        if not settings.trade.allow_unpromoted:
            raise BlockedError(f"{run_dir}: model status {status or 'unknown'!r} is not promoted; "
                               "pass --allow-unpromoted to trade it anyway")
        log.warning("%s: trading an unpromoted model (status %r) because of --allow-unpromoted", run_dir, status)
    return manifest


def model_folder(run_dir: Path, name: str) -> Path:
    """The folder holding the model `--policy name` means: the run folder itself, or for a sweep
    its best trial's folder."""
    if not run_dir.is_dir():
        raise UsageError(f"--policy {name!r}: not a baseline ({', '.join(BASELINES)}) and no train run "
                         f"folder {run_dir}")
    if not (run_dir / SWEEP_FILE).is_file():
        return run_dir
    sweep = read_run_json(run_dir / SWEEP_FILE)
    best = sweep.get("best_folder")
    if not isinstance(best, str) or not best or not (run_dir / best).is_dir():
        raise BlockedError(f"{run_dir}: the sweep has no evaluated best trial (status "
                           f"{sweep.get('status') or 'unknown'!r}); nothing to trade")
    return run_dir / best


def _trained_trade_band(run_dir: Path, manifest: dict[str, Any], settings: Settings) -> None:
    """A model trades with the no-trade band it was trained and evaluated with (env.trade_band is
    part of the execution model the runtime builds after this, and so of the ledger identity)."""
    band = (manifest.get("env") or {}).get("trade_band")
    if band is None or float(band) == settings.env.trade_band:
        return
    log.warning("%s: trading with env.trade_band %g, the band the model was trained with (the settings "
                "say %g)", run_dir, float(band), settings.env.trade_band)
    settings.env.trade_band = float(band)


def _symbol_warnings(run_dir: Path, manifest: dict[str, Any], settings: Settings) -> list[str]:
    """Another symbol is allowed (the features are scale-free), but the trade summary says so."""
    trained = manifest.get("symbol")
    if trained is None or str(trained).upper() == settings.data.symbol:
        return []
    message = f"model {run_dir.name} was trained on {trained}, trading {settings.data.symbol}"
    log.warning(message)
    return [message]


def running_feature_hash(settings: Settings) -> str:
    from coin_cli.features.spec import FeatureSpec

    return FeatureSpec.from_config(settings.features).implementation_hash()


def _hash_message(run_dir: Path, model_hash: str, running: str) -> str:
    return (f"{run_dir}: the model was trained on feature implementation {model_hash} but this coin "
            f"computes {running}; retrain it, or trade with the features it was trained on")


def _baseline(name: str, settings: Settings) -> Any:
    from coin_cli.agents.baselines import baseline_from_settings

    return baseline_from_settings(name, settings)



def policy_identity(name: str, settings: Settings) -> str:
    """What the policy `name` is, for a ledger's identity: a baseline with the parameters it reads,
    a trained model as its run id and the sha256 of its weights (a retrained model in the same
    folder is another strategy)."""
    key = name.strip()
    base = key.lower()
    p = settings.policy
    if base == "voltarget":
        return f"voltarget(target_vol={p.target_vol!r}, vol_feature={p.vol_feature}, max_weight={p.max_weight!r})"
    if base == "buyhold":
        return f"buyhold(max_weight={p.max_weight!r})"
    if base in BASELINES:
        return base
    import hashlib

    from coin_cli.agents.sb3 import POLICY_FILE

    run_dir = Path(settings.paths.runs_dir) / key
    folder = model_folder(run_dir, name) if run_dir.is_dir() else run_dir
    path = folder / POLICY_FILE
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the model ({exc.strerror})") from None
    trial = f" best trial {folder.name}" if folder != run_dir else ""
    return f"{key}{trial} (model sha256 {digest[:16]})"
