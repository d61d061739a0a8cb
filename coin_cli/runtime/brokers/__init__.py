"""Brokers: where an order intent becomes fills. `Broker` is the seam; the paper broker is here,
the Binance broker (a later issue) implements the same protocol with `external = True`."""

from coin_cli.runtime.brokers.base import Broker, OrderRejected
from coin_cli.runtime.brokers.paper import PaperBroker

__all__ = ["Broker", "OrderRejected", "PaperBroker"]
