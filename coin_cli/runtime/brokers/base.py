"""The Broker protocol."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from coin_cli.env.execution import Fill
    from coin_cli.runtime.orders import OrderIntent


class OrderRejected(Exception):
    """The venue refused the order (not an error of the runtime: an ORDER_REJECTED alert)."""


class Broker(Protocol):
    name: str
    external: bool
    """True when orders live outside this process (an exchange): the StateStore then commits each
    intent before `submit` sees it. The paper broker's book is the state file itself."""

    def submit(self, intent: OrderIntent) -> Fill | None:
        """Place the order. A Fill when it executed, None when accepted but not filled yet;
        raises OrderRejected when refused."""
        ...

    def recover(self, intent: OrderIntent) -> Fill | None:
        """The outcome of an intent committed before a crash, WITHOUT submitting it again
        (an exchange broker queries the order by its client id)."""
        ...
