"""StateStore: round trips, write-ahead intents, crash model, and refusing foreign or corrupt files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from coin_cli.errors import DataError, UsageError
from coin_cli.runtime.state import APPLICATION_ID, SCHEMA_VERSION, Checkpoint, StateIdentity, StateStore

IDENT = StateIdentity("BTCUSDT", "1h", "replay", "coin")


def _intent(store: StateStore, seq: int, cid: str) -> None:
    store.record_intent(seq, cid, decision_bar=1000 * seq, exec_bar=1000 * seq + 1, leg=0, qty=0.5, target=0.4,
                        ref_price=100.0, reason="ok")


def test_new_file_has_application_id_and_schema_version(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.sqlite", IDENT)
    assert store.created and store.load() is None
    store.close()
    conn = sqlite3.connect(tmp_path / "s.sqlite")
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_commit_round_trip(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.sqlite", IDENT)
    _intent(store, 1, "coin-BTCUSDT-1000-0")
    store.set_order_status("coin-BTCUSDT-1000-0", "FILLED")
    store.record_fill(1, 1001, 0.5, 100.05, 50.025, 0.05, 9949.9, 0.5)
    store.record_risk_event(1001, "ACTIVE", "REDUCING", "drawdown")
    cp = Checkpoint(first_bar=0, last_bar=1001, bars=3, cash=9949.9, qty=0.5, avg_price=100.05, last_close=101.0,
                    pending_target=0.3, pending_decision_bar=1001, pending_reason="ok", trades=1, fees=0.05,
                    turnover=50.025, order_seq=1, risk_state="REDUCING", risk_reason="drawdown", risk_since_bar=1001,
                    peak_equity=10_050.0, max_drawdown=0.1, day=0, day_turnover=50.025)
    store.commit(cp)
    store.close()
    again = StateStore(tmp_path / "s.sqlite", IDENT)
    assert not again.created
    assert again.load() == cp
    assert [o["client_order_id"] for o in again.orders()] == ["coin-BTCUSDT-1000-0"]
    assert again.orders()[0]["status"] == "FILLED"
    assert again.fills()[0]["price"] == 100.05
    assert again.risk_events()[0]["to_state"] == "REDUCING"


def test_buffered_rows_are_lost_without_a_commit(tmp_path: Path) -> None:
    # The crash model: what was not committed never happened (intent, fill and bar together).
    store = StateStore(tmp_path / "s.sqlite", IDENT)
    store.commit(Checkpoint(last_bar=5, bars=1, cash=1.0))
    _intent(store, 1, "a-1")
    store.record_fill(1, 1001, 0.5, 100.0, 50.0, 0.05, 1.0, 0.5)
    store.close()
    again = StateStore(tmp_path / "s.sqlite", IDENT)
    assert again.orders() == [] and again.fills() == []
    assert again.load().last_bar == 5


def test_durable_intent_is_committed_before_submit_and_never_twice(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = StateStore(path, IDENT, durable=True)
    _intent(store, 1, "coin-BTCUSDT-1000-0")
    # Another connection (as after a crash) already sees the intent, still pending.
    seen = sqlite3.connect(path).execute("SELECT client_order_id, status FROM orders").fetchall()
    assert seen == [("coin-BTCUSDT-1000-0", "INTENT")]
    assert list(store.pending_intents()) == ["coin-BTCUSDT-1000-0"]
    with pytest.raises(DataError, match="already in the ledger"):
        _intent(store, 2, "coin-BTCUSDT-1000-0")


def test_same_client_id_twice_in_one_batch_is_refused(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.sqlite", IDENT)
    _intent(store, 1, "x-1")
    with pytest.raises(DataError, match="already submitted"):
        _intent(store, 2, "x-1")


def test_committed_client_id_cannot_be_committed_again(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.sqlite", IDENT)
    _intent(store, 1, "x-1")
    store.commit(Checkpoint(last_bar=1))
    _intent(store, 2, "x-1")
    with pytest.raises(DataError, match="used twice"):
        store.commit(Checkpoint(last_bar=2))
    assert store.load().last_bar == 1


def test_not_sqlite_is_a_data_error_and_the_file_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    path.write_text("open_time,close\n1,2\n")
    with pytest.raises(DataError, match="not an SQLite database"):
        StateStore(path, IDENT)
    assert path.read_text() == "open_time,close\n1,2\n"


def test_foreign_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (x)")
    conn.commit()
    conn.close()
    with pytest.raises(DataError, match="application_id 0x0"):
        StateStore(path, IDENT)
    assert sqlite3.connect(path).execute("SELECT name FROM sqlite_master").fetchall() == [("notes",)]


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    StateStore(path, IDENT).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(DataError, match="newer"):
        StateStore(path, IDENT)


def test_corrupt_pages_are_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = StateStore(path, IDENT)
    store.commit(Checkpoint(last_bar=1, cash=5.0))
    store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    data = bytearray(path.read_bytes())
    page = 4096
    data[page + 8: 2 * page] = b"\xff" * (page - 8)   # scribble over page 2 (a b-tree page)
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="corrupt"):
        StateStore(path, IDENT).load()


def test_another_symbol_cannot_resume_this_ledger(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    StateStore(path, IDENT).close()
    with pytest.raises(UsageError, match="belongs to BTCUSDT 1h replay"):
        StateStore(path, StateIdentity("ETHUSDT", "1h", "replay", "coin"))


def test_every_identity_field_is_checked_and_named(tmp_path: Path) -> None:
    from coin_cli.env.execution import ExecutionModel, ExecutionParams

    def ident(policy: str = "voltarget", fee: float = 10.0, cash: float = 10_000.0) -> StateIdentity:
        return StateIdentity.for_runtime("BTCUSDT", "1h", "replay", "coin", policy,
                                         ExecutionModel(ExecutionParams(fee_bps=fee)), cash)

    path = tmp_path / "s.sqlite"
    StateStore(path, ident()).close()
    StateStore(path, ident()).close()                      # the same identity resumes
    for other, field in ((ident(policy="buyhold"), "policy"), (ident(fee=11.0), "execution"),
                         (ident(cash=5_000.0), "initial_cash")):
        with pytest.raises(UsageError, match=f"differ in {field}"):
            StateStore(path, other)
    assert len({ident().short_hash(), ident(fee=11.0).short_hash(), ident(policy="flat").short_hash()}) == 3
    with pytest.raises(UsageError, match="differ in policy, execution, initial_cash"):
        StateStore(path, IDENT)                            # a ledger written before the identity grew


V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE account (id INTEGER PRIMARY KEY CHECK (id = 1), first_bar INTEGER, last_bar INTEGER,
    bars INTEGER NOT NULL, cash REAL NOT NULL, last_close REAL, pending_target REAL, pending_decision_bar INTEGER,
    pending_reason TEXT, trades INTEGER NOT NULL, fees REAL NOT NULL, turnover REAL NOT NULL,
    order_seq INTEGER NOT NULL, updated_ms INTEGER NOT NULL);
CREATE TABLE positions (symbol TEXT PRIMARY KEY, qty REAL NOT NULL, avg_price REAL NOT NULL);
CREATE TABLE risk (id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT NOT NULL, reason TEXT NOT NULL,
    since_bar INTEGER, peak_equity REAL NOT NULL, max_drawdown REAL NOT NULL, day INTEGER, day_turnover REAL NOT NULL);
CREATE TABLE risk_events (seq INTEGER PRIMARY KEY, bar INTEGER, from_state TEXT, to_state TEXT NOT NULL,
    reason TEXT NOT NULL);
CREATE TABLE orders (seq INTEGER PRIMARY KEY, client_order_id TEXT NOT NULL UNIQUE, symbol TEXT NOT NULL,
    decision_bar INTEGER NOT NULL, exec_bar INTEGER NOT NULL, leg INTEGER NOT NULL, qty REAL NOT NULL,
    target REAL NOT NULL, ref_price REAL NOT NULL, reason TEXT NOT NULL, status TEXT NOT NULL);
CREATE TABLE fills (seq INTEGER PRIMARY KEY REFERENCES orders(seq), bar INTEGER NOT NULL, qty REAL NOT NULL,
    price REAL NOT NULL, notional REAL NOT NULL, fee REAL NOT NULL, cash_after REAL NOT NULL,
    qty_after REAL NOT NULL);
"""


def test_a_v1_ledger_is_migrated_in_place(tmp_path: Path) -> None:
    # A ledger written before fills were keyed by trade id (schema 1, as the previous release wrote it).
    path = tmp_path / "v1.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(V1_SCHEMA)
    conn.executemany("INSERT INTO meta VALUES (?, ?)", [("symbol", "BTCUSDT"), ("interval", "1h"),
                                                        ("mode", "replay"), ("strategy_id", "coin")])
    conn.execute("INSERT INTO orders VALUES (1, 'coin-BTCUSDT-1000-0', 'BTCUSDT', 1000, 1001, 0, 0.5, 0.4, 100.0, "
                 "'ok', 'filled')")
    conn.execute("INSERT INTO orders VALUES (2, 'coin-BTCUSDT-2000-0', 'BTCUSDT', 2000, 2001, 0, -0.5, 0.0, 99.0, "
                 "'ok', 'rejected')")
    conn.execute("INSERT INTO fills VALUES (1, 1001, 0.5, 100.05, 50.025, 0.05, 9949.9, 0.5)")
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    store = StateStore(path, StateIdentity("BTCUSDT", "1h", "replay", "coin", "?", "?", "?"))
    orders = store.orders()
    assert [(o["status"], o["filled_qty"]) for o in orders] == [("FILLED", 0.5), ("REJECTED", 0.0)]
    fill = store.fills()[0]
    assert (fill["seq"], fill["trade_id"], fill["price"], fill["fee"], fill["commission"]) == (1, 0, 100.05, 0.05, 0.05)
    store.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
