"""Binance Spot through python-binance: the one REST client (`rest.BinanceRESTClient`), exchange
filters (`filters`), the market kline websocket (`market_ws.MarketDataWS`) and `coin stream market`
(`stream_service`). Modules import python-binance lazily: `coin --help` stays light."""
