"""Adapters to Binance and Telegram."""
