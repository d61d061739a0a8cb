"""StateStore: the runtime's SQLite state (WAL) — orders, fills, positions, cash, the last
processed bar, the risk state and the write-ahead intent log.

Crash model. Everything a bar changes (its fill, the account, the risk state, the last processed
bar) is written in ONE transaction, so a killed process resumes from a consistent bar and the
last processed bar can never run ahead of the fills it implies. Commits are grouped (every
`commit_every` bars, when the event queue is idle, and at the end) because a commit costs
~80 µs and the replay handles a bar in ~10 µs. Whether an order intent must be committed
BEFORE the broker sees it depends on the broker: an external venue (Binance) keeps an order a
crash would forget, so the store commits the intent first (`durable_intents`); the in-process
paper broker's book IS this database, so its intent and fill commit together or not at all and a
restart re-derives both, with the same deterministic client order ids, from the same bars.

A file that is not SQLite, carries another application_id, comes from a newer schema or fails
the quick check is a DataError (exit 3): it is never replaced.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sqlite3
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from coin_cli.errors import DataError, UsageError
from coin_cli.runtime.ledger_schema import (
    APPLICATION_ID,
    INTENT,
    OPEN_STATUSES,
    SCHEMA_VERSION,
    TABLES,
    check_magic,
    check_version,
    create,
)

log = logging.getLogger("coin.runtime")

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "Checkpoint", "StateIdentity", "StateStore"]

_INSERT_ORDER = "INSERT INTO orders VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
_INSERT_FILL = "INSERT INTO fills VALUES (?,?,?,?,?,?,?,?,?,?,?)"
_UPDATE_ORDER = ("UPDATE orders SET status = ?, exchange_order_id = COALESCE(?, exchange_order_id), "
                 "filled_qty = COALESCE(?, filled_qty), status_detail = COALESCE(?, status_detail), "
                 "updated_ms = ? WHERE client_order_id = ?")


@dataclass
class Checkpoint:
    """Everything a restart needs besides the order and fill rows (one row per table)."""

    first_bar: int | None = None
    last_bar: int | None = None
    bars: int = 0
    cash: float = 0.0
    qty: float = 0.0
    avg_price: float = 0.0
    last_close: float | None = None
    pending_target: float | None = None
    pending_decision_bar: int | None = None
    pending_reason: str | None = None
    trades: int = 0
    fees: float = 0.0
    turnover: float = 0.0
    order_seq: int = 0
    risk_state: str = "ACTIVE"
    risk_reason: str = "start"
    risk_since_bar: int | None = None
    peak_equity: float = 0.0
    max_drawdown: float = 0.0
    day: int | None = None
    day_turnover: float = 0.0


@dataclass(frozen=True)
class StateIdentity:
    """Everything that gives a ledger its meaning: the market, the mode, the strategy id, the
    policy (a trained one with its model's hash), the execution parameters and the initial cash.
    A state file is resumed only under an equal identity; any difference is refused, never
    continued. `execution` is every ExecutionParams field, so a new filter joins it by itself."""

    symbol: str
    interval: str
    mode: str
    strategy_id: str
    policy: str = ""
    execution: str = ""
    initial_cash: str = ""

    @classmethod
    def for_runtime(cls, symbol: str, interval: str, mode: str, strategy_id: str, policy: str,
                    execution: Any, initial_cash: float) -> StateIdentity:
        """From the ExecutionModel's parameters (`execution.params`, a dataclass) and the rest."""
        params = execution.params
        parts = (f"{f.name}={getattr(params, f.name)!r}" for f in fields(params))
        return cls(symbol, interval, mode, strategy_id, policy, " ".join(parts), repr(float(initial_cash)))

    def short_hash(self) -> str:
        """8 hex digits of the whole identity: tells two ledgers of one market apart by file name."""
        canon = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(canon).hexdigest()[:8]

    def describe(self) -> str:
        text = f"{self.symbol} {self.interval} {self.mode} (strategy {self.strategy_id})"
        if self.policy or self.execution or self.initial_cash:
            text += f", policy {self.policy or '?'}, {self.execution or '?'}, initial_cash {self.initial_cash or '?'}"
        return text

    def differences(self, other: StateIdentity) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) != getattr(other, f.name)]


class StateStore:
    """One SQLite state file. Writes are buffered in memory and flushed by `commit`."""

    def __init__(self, path: Path, identity: StateIdentity, *, durable: bool = False) -> None:
        self.path = Path(path)
        self.identity = identity
        self.durable = durable
        self._orders: list[list[Any]] = []          # new order rows, in submission order
        self._order_index: dict[str, list[Any]] = {}  # client id -> its buffered row
        self._status: list[tuple[Any, ...]] = []    # order updates of rows already on disk (_UPDATE_ORDER)
        self._fills: list[tuple[Any, ...]] = []
        self._trade_keys: set[tuple[int, int]] = set()   # (seq, trade id) of the buffered fills
        self._risk_events: list[tuple[Any, ...]] = []
        self.commits = 0
        self.created = False
        self._conn = self._open()

    # ---- opening and validation ---------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        existed = self.path.is_file() and self.path.stat().st_size > 0
        if existed:
            check_magic(self.path)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL (WAL) survives a killed process, the crash model we test. A venue's intents are
            # committed with FULL (record_intent): they alone must survive power loss, because
            # everything after them (answers, fills, bars) can be asked of the exchange again.
            conn.execute("PRAGMA synchronous=NORMAL")
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if app_id == 0 and not tables:
                self._create(conn)
                self.created = True
            else:
                self._validate(conn, app_id, tables)
        except sqlite3.DatabaseError as exc:
            raise DataError(f"{self.path}: corrupt or unreadable state file ({exc}); "
                            "move it aside to start a new ledger") from None
        except OSError as exc:
            raise DataError(f"{self.path}: cannot open state file ({exc.strerror})") from None
        return conn

    def _create(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        create(conn)
        ident = asdict(self.identity)
        ident["created_ms"] = str(_now_ms())
        ident["schema_version"] = str(SCHEMA_VERSION)
        conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", [(k, str(v)) for k, v in ident.items()])
        conn.execute("COMMIT")
        log.info("%s: new state file for %s", self.path, self.identity.describe())

    def _validate(self, conn: sqlite3.Connection, app_id: int, tables: set[str]) -> None:
        if app_id != APPLICATION_ID:
            raise DataError(f"{self.path}: not a coin state file (SQLite application_id {app_id:#x}, "
                            f"expected {APPLICATION_ID:#x}); refusing to use or replace it")
        check_version(conn, self.path)
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise DataError(f"{self.path}: corrupt state file (quick_check: {check})")
        missing = [t for t in TABLES if t not in tables]
        if missing:
            raise DataError(f"{self.path}: corrupt state file (missing table(s) {', '.join(missing)})")
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        stored = StateIdentity(**{f.name: meta.get(f.name, "?") for f in fields(StateIdentity)})
        if stored != self.identity:
            differ = ", ".join(stored.differences(self.identity))
            raise UsageError(f"{self.path}: this state file belongs to {stored.describe()}, not "
                             f"{self.identity.describe()} (they differ in {differ}); "
                             "a ledger never continues under another identity: use another --state-file")

    # ---- reading ------------------------------------------------------------------------------

    def load(self) -> Checkpoint | None:
        """The last committed checkpoint; None for a new ledger."""
        try:
            return self._load()
        except sqlite3.DatabaseError as exc:
            raise DataError(f"{self.path}: corrupt state file ({exc}); move it aside to start a new ledger") from None

    def _load(self) -> Checkpoint | None:
        row = self._conn.execute(
            "SELECT first_bar, last_bar, bars, cash, last_close, pending_target, pending_decision_bar, "
            "pending_reason, trades, fees, turnover, order_seq FROM account WHERE id = 1").fetchone()
        if row is None:
            return None
        cp = Checkpoint(*row[:2], bars=row[2], cash=row[3], last_close=row[4], pending_target=row[5],
                        pending_decision_bar=row[6], pending_reason=row[7], trades=row[8], fees=row[9],
                        turnover=row[10], order_seq=row[11])
        pos = self._conn.execute("SELECT qty, avg_price FROM positions WHERE symbol = ?",
                                 (self.identity.symbol,)).fetchone()
        if pos is not None:
            cp.qty, cp.avg_price = pos
        risk = self._conn.execute("SELECT state, reason, since_bar, peak_equity, max_drawdown, day, day_turnover "
                                  "FROM risk WHERE id = 1").fetchone()
        if risk is not None:
            (cp.risk_state, cp.risk_reason, cp.risk_since_bar, cp.peak_equity, cp.max_drawdown,
             cp.day, cp.day_turnover) = risk
        return cp

    def meta(self) -> dict[str, str]:
        return dict(self._conn.execute("SELECT key, value FROM meta").fetchall())

    def pending_intents(self) -> dict[str, dict[str, Any]]:
        """Intents committed before a crash whose outcome was never recorded (durable mode)."""
        cur = self._conn.execute("SELECT client_order_id, seq, decision_bar, exec_bar, leg, qty, target, ref_price, "
                                 "reason FROM orders WHERE status = ? ORDER BY seq", (INTENT,))
        keys = ("client_order_id", "seq", "decision_bar", "exec_bar", "leg", "qty", "target", "ref_price", "reason")
        return {row[0]: dict(zip(keys, row, strict=True)) for row in cur}

    def order_exists(self, client_order_id: str) -> bool:
        if client_order_id in self._order_index:
            return True
        return self._conn.execute("SELECT 1 FROM orders WHERE client_order_id = ?",
                                  (client_order_id,)).fetchone() is not None

    def orders(self) -> list[dict[str, Any]]:
        cur = self._conn.execute("SELECT * FROM orders ORDER BY seq")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]

    def fills(self) -> list[dict[str, Any]]:
        cur = self._conn.execute("SELECT f.*, o.client_order_id FROM fills f JOIN orders o USING (seq) ORDER BY seq")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]

    def risk_events(self) -> list[dict[str, Any]]:
        cur = self._conn.execute("SELECT * FROM risk_events ORDER BY seq")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]

    # ---- writing (buffered) -------------------------------------------------------------------

    def record_intent(self, seq: int, client_order_id: str, decision_bar: int, exec_bar: int, leg: int,
                      qty: float, target: float, ref_price: float, reason: str) -> None:
        """Write-ahead: the intent goes into the log before the broker is called. In durable mode
        it is committed at once; otherwise it commits atomically with its fill and bar."""
        row = [seq, client_order_id, self.identity.symbol, decision_bar, exec_bar, leg, qty, target, ref_price,
               reason, INTENT, None, 0.0, None, None]
        if self.durable:
            conn = self._conn
            try:
                conn.execute("PRAGMA synchronous=FULL")   # on disk (fsync) before the request leaves
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(_INSERT_ORDER, row)
                conn.execute("COMMIT")
            except sqlite3.IntegrityError:
                conn.execute("ROLLBACK")
                raise DataError(f"{self.path}: client order id {client_order_id} is already in the ledger; "
                                "refusing to submit it twice") from None
            finally:
                conn.execute("PRAGMA synchronous=NORMAL")
            self.commits += 1
            return
        if client_order_id in self._order_index:
            raise DataError(f"{self.path}: client order id {client_order_id} was already submitted in this run")
        self._orders.append(row)
        self._order_index[client_order_id] = row

    def set_order_status(self, client_order_id: str, status: str, *, exchange_order_id: int | None = None,
                         filled_qty: float | None = None, detail: str | None = None) -> None:
        """The order's state as the venue last told it (Binance's names; see ledger_schema)."""
        row = self._order_index.get(client_order_id)
        if row is not None:  # not on disk yet: the buffered row itself
            row[10] = status
            for k, value in ((11, exchange_order_id), (12, filled_qty), (13, detail)):
                if value is not None:
                    row[k] = value
        else:
            self._status.append((status, exchange_order_id, filled_qty, detail, _now_ms(), client_order_id))

    def record_fill(self, seq: int, bar: int, qty: float, price: float, notional: float, fee: float,
                    cash_after: float, qty_after: float, trade_id: int = 0, fee_asset: str | None = None,
                    commission: float | None = None) -> None:
        """One execution of order `seq`; (seq, trade_id) is its key (a venue's trade id; 0 for paper)."""
        self._fills.append((seq, bar, qty, price, notional, fee, cash_after, qty_after, trade_id, fee_asset,
                            fee if commission is None else commission))
        self._trade_keys.add((seq, trade_id))

    def has_trade(self, seq: int, trade_id: int) -> bool:
        if (seq, trade_id) in self._trade_keys:
            return True
        return self._conn.execute("SELECT 1 FROM fills WHERE seq = ? AND trade_id = ?",
                                  (seq, trade_id)).fetchone() is not None

    def order(self, client_order_id: str) -> dict[str, Any] | None:
        rows = self._select("SELECT * FROM orders WHERE client_order_id = ?", (client_order_id,))
        return rows[0] if rows else None

    def order_by_exchange_id(self, exchange_order_id: int) -> dict[str, Any] | None:
        rows = self._select("SELECT * FROM orders WHERE exchange_order_id = ?", (exchange_order_id,))
        return rows[0] if rows else None

    def open_orders(self) -> list[dict[str, Any]]:
        """Orders whose outcome is not final (an intent, an UNKNOWN answer, NEW, PARTIALLY_FILLED)."""
        marks = ",".join("?" * len(OPEN_STATUSES))
        return self._select(f"SELECT * FROM orders WHERE status IN ({marks}) ORDER BY seq", OPEN_STATUSES)

    def last_trade_id(self) -> int | None:
        return self._conn.execute("SELECT MAX(trade_id) FROM fills WHERE trade_id > 0").fetchone()[0]

    def _select(self, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        cur = self._conn.execute(sql, args)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]

    def record_risk_event(self, bar: int | None, from_state: str | None, to_state: str, reason: str) -> None:
        self._risk_events.append((bar, from_state, to_state, reason))

    def commit(self, cp: Checkpoint) -> None:
        """Flush the buffered rows and the checkpoint in one transaction."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            if self._orders:
                conn.executemany(_INSERT_ORDER, self._orders)
            if self._status:
                conn.executemany(_UPDATE_ORDER, self._status)
            if self._fills:
                conn.executemany(_INSERT_FILL, self._fills)
            if self._risk_events:
                conn.executemany("INSERT INTO risk_events (bar, from_state, to_state, reason) VALUES (?,?,?,?)",
                                 self._risk_events)
            conn.execute(
                "INSERT OR REPLACE INTO account VALUES (1,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (cp.first_bar, cp.last_bar, cp.bars, cp.cash, cp.last_close, cp.pending_target,
                 cp.pending_decision_bar, cp.pending_reason, cp.trades, cp.fees, cp.turnover, cp.order_seq,
                 _now_ms()))
            conn.execute("INSERT OR REPLACE INTO positions VALUES (?,?,?)",
                         (self.identity.symbol, cp.qty, cp.avg_price))
            conn.execute("INSERT OR REPLACE INTO risk VALUES (1,?,?,?,?,?,?,?)",
                         (cp.risk_state, cp.risk_reason, cp.risk_since_bar, cp.peak_equity, cp.max_drawdown,
                          cp.day, cp.day_turnover))
            conn.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            conn.execute("ROLLBACK")
            raise DataError(f"{self.path}: ledger conflict ({exc}); a client order id would be used twice") from None
        except sqlite3.OperationalError as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise DataError(f"{self.path}: cannot write state ({exc})") from None
        self._orders.clear()
        self._order_index.clear()
        self._status.clear()
        self._fills.clear()
        self._trade_keys.clear()
        self._risk_events.clear()
        self.commits += 1

    def set_meta(self, key: str, value: str) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def close(self) -> None:
        """Close without committing what is buffered (a clean stop commits first)."""
        with contextlib.suppress(sqlite3.Error):  # closing must never hide the error that got us here
            self._conn.close()


def _now_ms() -> int:
    return int(time.time() * 1000)
