"""The durable Telegram outbox: a SQLite file shared by every `coin notify` and the runtime.

- FIFO per chat: messages go out in the order they were enqueued (by row id).
- Identical alerts within `dedupe_window` collapse into one row with a count. While the first
  is still queued, repeats just add to its count. Once it has been sent, repeats collapse into
  ONE follow-up row that waits until the window after that send has passed, so an identical alert
  goes out at most once per window and no occurrence is ever dropped.
- Pacing state (recent send times and flood-control blocks per chat) lives here too, so the
  limits hold across processes (1 message/s per chat, 20/min per group).
- Safe under concurrent cron runs: WAL mode, a busy timeout, read-modify-write in
  `BEGIN IMMEDIATE` transactions, and one delivering process at a time (`delivery_lock`).

Rows move pending -> sending -> sent; a message Telegram refuses (e.g. too long, bad markup) is
`rejected` and kept for inspection. A row left `sending` by a crashed process goes back to
pending (it may have been delivered: alerts prefer a possible duplicate over a loss).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from coin_cli.errors import DataError

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id TEXT NOT NULL,
    text TEXT NOT NULL,
    parse_mode TEXT NOT NULL,
    silent INTEGER NOT NULL DEFAULT 0,
    dedupe_key TEXT,
    count INTEGER NOT NULL DEFAULT 1,
    repeat INTEGER NOT NULL DEFAULT 0,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    not_before REAL NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    timeouts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    sent_at REAL,
    telegram_message_id INTEGER,
    source TEXT NOT NULL DEFAULT 'cli'
);
CREATE INDEX IF NOT EXISTS messages_queue ON messages (chat_id, status, id);
CREATE INDEX IF NOT EXISTS messages_dedupe ON messages (dedupe_key, id);
CREATE TABLE IF NOT EXISTS sends (chat_id TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS sends_chat ON sends (chat_id, at);
CREATE TABLE IF NOT EXISTS chats (chat_id TEXT PRIMARY KEY, blocked_until REAL NOT NULL DEFAULT 0);
"""

# "CoOb" in the SQLite header: an outbox is told from a coin ledger (0x436F696E) or any other file
# before a table is written into it.
OUTBOX_APPLICATION_ID = 0x436F4F62
OUTBOX_TABLES = frozenset({"messages", "sends", "chats", "sqlite_sequence"})
GROUP_WINDOW_S = 60.0
KEEP_SENT_S = 7 * 86400.0


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    chat_id: str
    text: str
    parse_mode: str
    silent: bool
    count: int
    repeat: bool
    first_seen: float
    last_seen: float
    not_before: float
    status: str
    attempts: int
    timeouts: int
    last_error: str | None
    sent_at: float | None
    telegram_message_id: int | None


@dataclass(frozen=True)
class Enqueued:
    id: int
    action: str           # queued | collapsed (into a queued row) | deferred (repeat, sent after the window)
    not_before: float


def is_group_chat(chat_id: str) -> bool:
    """Groups, supergroups and channels have negative ids (or an @username)."""
    return chat_id.startswith(("-", "@"))


def pacing_delay(send_times: Sequence[float], now: float, *, min_interval: float, group_per_minute: int,
                 group: bool, blocked_until: float = 0.0) -> float:
    """Seconds to wait before the next message to a chat, given its recent send times (ascending)."""
    ready = max(now, blocked_until)
    if send_times:
        ready = max(ready, send_times[-1] + min_interval)
        if group and len(send_times) >= group_per_minute:
            ready = max(ready, send_times[-group_per_minute] + GROUP_WINDOW_S)
    return max(0.0, ready - now)


class Outbox:
    def __init__(self, path: Path, clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self.clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        # Switching a new file to WAL takes an exclusive lock and SQLite answers "database is
        # locked" at once, without its busy handler, when cron runs start together: retry that.
        deadline = time.monotonic() + 30.0
        while True:
            db = None
            try:
                db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
                db.row_factory = sqlite3.Row
                self._check_is_outbox(db)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                db.executescript(SCHEMA + f"PRAGMA application_id = {OUTBOX_APPLICATION_ID};")
                return db
            except DataError:
                if db is not None:
                    db.close()
                raise
            except sqlite3.OperationalError as exc:
                if db is not None:
                    db.close()
                if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() > deadline:
                    raise DataError(f"{self.path}: cannot open the Telegram outbox ({exc})") from None
                time.sleep(0.02)
            except sqlite3.DatabaseError as exc:
                if db is not None:
                    db.close()
                raise DataError(f"{self.path}: cannot open the Telegram outbox ({exc}); move the file away "
                                "to start a new one") from None

    def _check_is_outbox(self, db: sqlite3.Connection) -> None:
        """An empty file becomes an outbox; one with our id, or only our tables (an outbox written
        before the id existed, or a concurrent creator), is one; anything else is refused untouched."""
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        if app_id == OUTBOX_APPLICATION_ID:
            return
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if app_id == 0 and tables <= OUTBOX_TABLES:
            return
        found = f"SQLite application_id {app_id:#x}, tables {', '.join(sorted(tables)) or 'none'}"
        raise DataError(f"{self.path}: not a coin Telegram outbox ({found}); refusing to write into it "
                        "(point telegram.outbox at another file)")

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # ---- enqueue -------------------------------------------------------------------------------
    def enqueue(self, chat_id: str, parts: Sequence[tuple[str, str | None]], *, parse_mode: str,
                silent: bool = False, dedupe_window: float = 0.0, source: str = "cli") -> list[Enqueued]:
        """Add `parts` ((text, dedupe_key) pairs, in order) atomically; returns one Enqueued per part."""
        now = self.clock()
        result = []
        with self._write() as db:
            for text, key in parts:
                merged = self._collapse(db, chat_id, key, now, dedupe_window) if key and dedupe_window > 0 else None
                if merged is not None:
                    result.append(merged)
                    continue
                cur = db.execute(
                    "INSERT INTO messages (chat_id, text, parse_mode, silent, dedupe_key, first_seen, last_seen,"
                    " source) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (chat_id, text, parse_mode, int(silent), key, now, now, source))
                result.append(Enqueued(int(cur.lastrowid or 0), "queued", 0.0))
        return result

    def _collapse(self, db: sqlite3.Connection, chat_id: str, key: str, now: float,
                  window: float) -> Enqueued | None:
        row = db.execute(
            "SELECT id, status, first_seen, sent_at, not_before FROM messages WHERE dedupe_key = ? AND chat_id = ?"
            " AND status != 'rejected' ORDER BY id DESC LIMIT 1", (key, chat_id)).fetchone()
        if row is None:
            return None
        if row["status"] == "pending" and (row["first_seen"] >= now - window or row["not_before"] > now):
            db.execute("UPDATE messages SET count = count + 1, last_seen = ? WHERE id = ?", (now, row["id"]))
            action = "deferred" if row["not_before"] > now else "collapsed"
            return Enqueued(row["id"], action, row["not_before"])
        if row["status"] == "sent" and row["sent_at"] is not None and row["sent_at"] >= now - window:
            not_before = row["sent_at"] + window
        elif row["status"] == "sending":
            not_before = now + window
        else:
            return None
        cur = db.execute(
            "INSERT INTO messages (chat_id, text, parse_mode, silent, dedupe_key, repeat, first_seen, last_seen,"
            " not_before, source) SELECT chat_id, text, parse_mode, silent, dedupe_key, 1, ?, ?, ?, source"
            " FROM messages WHERE id = ?", (now, now, not_before, row["id"]))
        return Enqueued(int(cur.lastrowid or 0), "deferred", not_before)

    # ---- delivery side -------------------------------------------------------------------------
    def next_due(self, chat_id: str, *, force: bool = False) -> OutboxMessage | None:
        """The oldest pending message for `chat_id` that may go now (`force`: ignore collapse deferral)."""
        limit = float("inf") if force else self.clock()
        row = self._db.execute(
            "SELECT * FROM messages WHERE chat_id = ? AND status = 'pending' AND not_before <= ? ORDER BY id LIMIT 1",
            (chat_id, limit)).fetchone()
        return _message(row) if row else None

    def mark_sending(self, message_id: int) -> OutboxMessage:
        """Claim a row for one send; returns its current state (the count may have grown)."""
        with self._write() as db:
            db.execute("UPDATE messages SET status = 'sending' WHERE id = ?", (message_id,))
            row = db.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
        return _message(row)

    def mark_sent(self, message_id: int, chat_id: str, *, telegram_message_id: int | None, attempts: int,
                  timeouts: int) -> None:
        now = self.clock()
        with self._write() as db:
            db.execute(
                "UPDATE messages SET status = 'sent', sent_at = ?, telegram_message_id = ?, attempts = attempts + ?,"
                " timeouts = timeouts + ?, last_error = NULL WHERE id = ?",
                (now, telegram_message_id, attempts, timeouts, message_id))
            db.execute("INSERT INTO sends (chat_id, at) VALUES (?, ?)", (chat_id, now))

    def mark_unsent(self, message_id: int, *, attempts: int, timeouts: int, error: str) -> None:
        """Back to pending after failed attempts (transient or chat-level error)."""
        with self._write() as db:
            db.execute(
                "UPDATE messages SET status = 'pending', attempts = attempts + ?, timeouts = timeouts + ?,"
                " last_error = ? WHERE id = ?", (attempts, timeouts, error, message_id))

    def mark_rejected(self, message_id: int, *, attempts: int, timeouts: int, error: str) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE messages SET status = 'rejected', attempts = attempts + ?, timeouts = timeouts + ?,"
                " last_error = ? WHERE id = ?", (attempts, timeouts, error, message_id))

    def block_chat(self, chat_id: str, until: float) -> None:
        """Flood control: no message to this chat before `until` (honoured by every process)."""
        with self._write() as db:
            db.execute("INSERT INTO chats (chat_id, blocked_until) VALUES (?, ?) ON CONFLICT(chat_id)"
                       " DO UPDATE SET blocked_until = max(blocked_until, excluded.blocked_until)", (chat_id, until))

    def retarget(self, old_chat_id: str, new_chat_id: str) -> int:
        """A group became a supergroup: queued messages follow it to its new id."""
        with self._write() as db:
            cur = db.execute("UPDATE messages SET chat_id = ? WHERE chat_id = ? AND status = 'pending'",
                             (new_chat_id, old_chat_id))
        return cur.rowcount

    def pacing_wait(self, chat_id: str, *, min_interval: float, group_per_minute: int) -> float:
        now = self.clock()
        times = [r[0] for r in self._db.execute(
            "SELECT at FROM sends WHERE chat_id = ? AND at >= ? ORDER BY at", (chat_id, now - GROUP_WINDOW_S))]
        blocked = self._db.execute("SELECT blocked_until FROM chats WHERE chat_id = ?", (chat_id,)).fetchone()
        return pacing_delay(times, now, min_interval=min_interval, group_per_minute=group_per_minute,
                            group=is_group_chat(chat_id), blocked_until=blocked[0] if blocked else 0.0)

    def recover_and_prune(self) -> None:
        """Call with the delivery lock held: nobody else is sending, so `sending` rows are orphans."""
        now = self.clock()
        stale = self._db.execute(
            "SELECT (SELECT count(*) FROM messages WHERE status = 'sending' OR (status = 'sent' AND sent_at < ?))"
            " + (SELECT count(*) FROM sends WHERE at < ?)", (now - KEEP_SENT_S, now - 2 * GROUP_WINDOW_S)).fetchone()
        if not stale[0]:
            return  # the usual case: no write transaction, no fsync
        with self._write() as db:
            db.execute("UPDATE messages SET status = 'pending' WHERE status = 'sending'")
            db.execute("DELETE FROM messages WHERE status = 'sent' AND sent_at < ?", (now - KEEP_SENT_S,))
            db.execute("DELETE FROM sends WHERE at < ?", (now - 2 * GROUP_WINDOW_S,))

    # ---- inspection ----------------------------------------------------------------------------
    def get(self, message_id: int) -> OutboxMessage | None:
        row = self._db.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
        return _message(row) if row else None

    def messages(self, status: str | None = None) -> list[OutboxMessage]:
        if status is None:
            rows = self._db.execute("SELECT * FROM messages ORDER BY id").fetchall()
        else:
            rows = self._db.execute("SELECT * FROM messages WHERE status = ? ORDER BY id", (status,)).fetchall()
        return [_message(r) for r in rows]

    def counts(self, chat_id: str | None = None) -> dict[str, int]:
        where, args = ("WHERE chat_id = ?", (chat_id,)) if chat_id is not None else ("", ())
        rows = self._db.execute(f"SELECT status, count(*) FROM messages {where} GROUP BY status", args)
        return {status: n for status, n in rows}

    def next_wake(self, chat_id: str) -> float | None:
        """When the earliest deferred message for `chat_id` becomes due (None: nothing pending)."""
        row = self._db.execute("SELECT min(not_before) FROM messages WHERE chat_id = ? AND status = 'pending'",
                               (chat_id,)).fetchone()
        return row[0] if row and row[0] is not None else None

    # ---- one deliverer at a time ---------------------------------------------------------------
    @contextmanager
    def delivery_lock(self, wait: float, give_up: Callable[[], bool] | None = None) -> Iterator[bool]:
        """Hold `<outbox>.lock` while delivering. Waits up to `wait` seconds, polling; stops waiting
        early when `give_up()` says so (e.g. another process already delivered our message).
        Yields whether the lock is held."""
        fd = os.open(str(self.path) + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + wait
            held = False
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    held = True
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline or (give_up is not None and give_up()):
                        break
                    time.sleep(0.05)
            yield held
        finally:
            os.close(fd)  # closing the descriptor releases the flock


def _message(row: sqlite3.Row) -> OutboxMessage:
    return OutboxMessage(
        id=row["id"], chat_id=row["chat_id"], text=row["text"], parse_mode=row["parse_mode"],
        silent=bool(row["silent"]), count=row["count"], repeat=bool(row["repeat"]), first_seen=row["first_seen"],
        last_seen=row["last_seen"], not_before=row["not_before"], status=row["status"], attempts=row["attempts"],
        timeouts=row["timeouts"], last_error=row["last_error"], sent_at=row["sent_at"],
        telegram_message_id=row["telegram_message_id"])
