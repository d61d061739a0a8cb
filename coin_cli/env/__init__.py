"""TradingEnv (gymnasium) and the one execution model."""
