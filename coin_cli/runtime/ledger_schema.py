"""The ledger's SQLite schema, its version check and its one migration (v1 -> v2).

v2 (issue 13) lets the ledger hold a real exchange's answers: an order has Binance's status
(NEW, PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED, REJECTED, UNKNOWN, or INTENT while only the
write-ahead intent is known), the exchange's order id and its cumulative filled quantity; a fill is
keyed by (order, trade id) and keeps the commission in the asset the exchange charged it in. A v1
file (one fill per order, lower-case statuses) is migrated in place, in one transaction.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from coin_cli.errors import DataError

APPLICATION_ID = 0x436F696E  # "Coin" in the SQLite header: tells our state files from any other
SCHEMA_VERSION = 2
SQLITE_MAGIC = b"SQLite format 3\x00"

# Binance's order statuses, plus INTENT: committed before the request left, no answer known yet.
INTENT = "INTENT"
OPEN_STATUSES = (INTENT, "UNKNOWN", "NEW", "PARTIALLY_FILLED", "PENDING_NEW")
FINAL_STATUSES = ("FILLED", "CANCELED", "EXPIRED", "EXPIRED_IN_MATCH", "REJECTED")

_ORDERS = """
CREATE TABLE orders (
    seq INTEGER PRIMARY KEY,
    client_order_id TEXT NOT NULL UNIQUE,
    symbol TEXT NOT NULL, decision_bar INTEGER NOT NULL, exec_bar INTEGER NOT NULL, leg INTEGER NOT NULL,
    qty REAL NOT NULL, target REAL NOT NULL, ref_price REAL NOT NULL, reason TEXT NOT NULL,
    status TEXT NOT NULL,
    exchange_order_id INTEGER, filled_qty REAL NOT NULL DEFAULT 0, status_detail TEXT, updated_ms INTEGER
)"""
# fee: in the quote currency (a commission in the base asset converted at the trade price; 0 when
# charged in a third asset such as BNB); commission + fee_asset: what the exchange charged, as charged.
_FILLS = """
CREATE TABLE {name} (
    seq INTEGER NOT NULL REFERENCES orders(seq),
    bar INTEGER NOT NULL, qty REAL NOT NULL, price REAL NOT NULL, notional REAL NOT NULL, fee REAL NOT NULL,
    cash_after REAL NOT NULL, qty_after REAL NOT NULL,
    trade_id INTEGER NOT NULL DEFAULT 0, fee_asset TEXT, commission REAL,
    PRIMARY KEY (seq, trade_id)
)"""
SCHEMA = ("""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE account (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    first_bar INTEGER, last_bar INTEGER, bars INTEGER NOT NULL,
    cash REAL NOT NULL, last_close REAL,
    pending_target REAL, pending_decision_bar INTEGER, pending_reason TEXT,
    trades INTEGER NOT NULL, fees REAL NOT NULL, turnover REAL NOT NULL, order_seq INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE TABLE positions (symbol TEXT PRIMARY KEY, qty REAL NOT NULL, avg_price REAL NOT NULL);
CREATE TABLE risk (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    state TEXT NOT NULL, reason TEXT NOT NULL, since_bar INTEGER,
    peak_equity REAL NOT NULL, max_drawdown REAL NOT NULL, day INTEGER, day_turnover REAL NOT NULL
);
CREATE TABLE risk_events (
    seq INTEGER PRIMARY KEY, bar INTEGER, from_state TEXT, to_state TEXT NOT NULL, reason TEXT NOT NULL
);
""" + _ORDERS + ";" + _FILLS.format(name="fills") + ";")
TABLES = ("meta", "account", "positions", "risk", "risk_events", "orders", "fills")

_V1_STATUS = {"pending": INTENT, "filled": "FILLED", "rejected": "REJECTED"}


def create(conn: sqlite3.Connection) -> None:
    for statement in SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def check_version(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a newer schema; migrate an older one (in one transaction: all or nothing)."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise DataError(f"{path}: state schema version {version} is newer than this coin "
                        f"understands ({SCHEMA_VERSION}); upgrade coin")
    if version == 1:
        _migrate_v1(conn)
    elif version < SCHEMA_VERSION:
        raise DataError(f"{path}: state schema version {version} is older than {SCHEMA_VERSION} "
                        "and has no migration")


def _migrate_v1(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for column in ("exchange_order_id INTEGER", "filled_qty REAL NOT NULL DEFAULT 0", "status_detail TEXT",
                       "updated_ms INTEGER"):
            conn.execute(f"ALTER TABLE orders ADD COLUMN {column}")
        for old, new in _V1_STATUS.items():
            conn.execute("UPDATE orders SET status = ? WHERE status = ?", (new, old))
        conn.execute("UPDATE orders SET filled_qty = qty WHERE status = 'FILLED'")
        conn.execute(_FILLS.format(name="fills_v2"))
        conn.execute("INSERT INTO fills_v2 SELECT seq, bar, qty, price, notional, fee, cash_after, qty_after, "
                     "0, NULL, fee FROM fills")
        conn.execute("DROP TABLE fills")
        conn.execute("ALTER TABLE fills_v2 RENAME TO fills")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def check_magic(path: Path) -> None:
    try:
        with path.open("rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise DataError(f"{path}: cannot read state file ({exc.strerror})") from None
    if head != SQLITE_MAGIC:
        raise DataError(f"{path}: not a coin state file (not an SQLite database); refusing to use or replace it")
