"""coin: reinforcement-learning crypto trading on Binance Spot."""

__version__ = "0.1.0"
