"""Services behind `coin train`: the probe, RL training, evaluation."""
