"""Feature specs with offline (vectorised) and online (incremental) implementations."""
