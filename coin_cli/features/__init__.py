"""Feature specs with offline (vectorised) and online (incremental) implementations that agree
bit for bit. pandas is imported only inside `compute_offline`."""

from coin_cli.features.offline import compute_offline, compute_offline_array
from coin_cli.features.online import OnlineFeatureEngine
from coin_cli.features.spec import FeatureDef, FeatureSpec, feature_manifest

__all__ = [
    "FeatureDef", "FeatureSpec", "OnlineFeatureEngine", "compute_offline", "compute_offline_array",
    "feature_manifest",
]
