"""Small factories build_runtime calls: the policy, its input type, the drift monitor, the notifier.
Each imports what it builds when it is called (the replay of a baseline never loads torch)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from coin_cli.config import Settings


def drift_monitor(settings: Settings, features: Any, obs_window: Any) -> Any:
    """PSI per feature against the train run's reference (feature_manifest.json "drift_reference");
    None for a baseline policy or a run trained before the reference existed."""
    import json

    from coin_cli.agents.loader import BASELINES, FEATURE_MANIFEST

    name = settings.trade.policy.strip()
    path = Path(settings.paths.runs_dir) / name / FEATURE_MANIFEST
    if name.lower() in BASELINES or obs_window is None or not path.is_file():
        return None
    try:
        reference = json.loads(path.read_text(encoding="utf-8")).get("drift_reference")
    except (OSError, ValueError):
        return None
    if not reference:
        return None
    from coin_cli.monitoring.drift import DriftMonitor

    m = settings.monitoring
    return DriftMonitor(reference, list(features.names), m.drift_window, m.drift_threshold)


def resolve_policy(settings: Settings) -> Any:
    from coin_cli.agents.loader import resolve_policy as resolve

    return resolve(settings.trade.policy, settings)


def needs_observation(policy: Any) -> bool:
    flag = getattr(policy, "needs_observation", None)
    return bool(flag) if flag is not None else hasattr(policy, "net")


def policy_input_factory() -> Callable[..., Any]:
    from coin_cli.agents.policy import PolicyInput

    return PolicyInput


def notifier_for(settings: Settings) -> Any:
    try:
        from coin_cli.monitoring.telegram_notifier import notifier_from_settings
    except ImportError:  # the Telegram outbox is optional wiring
        from coin_cli.monitoring.notifier import LogNotifier

        return LogNotifier()
    return notifier_from_settings(settings)
