"""Candles: schema, parquet store, validation, import, download, bootstrap."""
