"""Alert text for Telegram: the unified header, escaping for the parse mode, splitting over-long
messages into numbered parts, and the key that makes two alerts "identical" for de-duplication.

Pure functions (no I/O), shared by `coin notify` and the runtime's OutboxNotifier.
"""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass
from datetime import UTC, datetime

# Telegram counts "1-4096 characters after entities parsing". We measure the escaped text (never
# shorter than the parsed one) and count characters outside the BMP twice, which keeps a margin
# for how Telegram counts emoji; RESERVE leaves room for the collapse-count line added at send time.
MAX_MESSAGE_CHARS = 4096
RESERVE = 80


@dataclass(frozen=True)
class MessagePart:
    text: str              # ready to send: escaped for the parse mode, with header and part label
    dedupe_key: str        # same alert (chat, code, text, mode, part) -> same key; time is not part of it


def telegram_length(text: str) -> int:
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def escape(text: str, parse_mode: str) -> str:
    return html.escape(text, quote=False) if parse_mode == "html" else text


def alert_header(code: str, host: str, moment: datetime) -> str:
    """The first line of the unified alert format (same as `Alert.format()`)."""
    return f"[{code}] {host} {moment.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S')} UTC"


def dedupe_key(chat_id: str, text: str, code: str | None, parse_mode: str, silent: bool, part: str) -> str:
    raw = "\x1f".join([chat_id, code or "", parse_mode, "1" if silent else "0", part, text])
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def build_parts(
    text: str,
    *,
    chat_id: str,
    parse_mode: str,
    silent: bool = False,
    code: str | None = None,
    host: str | None = None,
    moment: datetime | None = None,
    limit: int = MAX_MESSAGE_CHARS,
) -> list[MessagePart]:
    """Render `text` (with the alert header when `code` is given) into parts of at most `limit`
    characters, split on line boundaries; parts are labelled `(k/n)` when there is more than one."""
    header = ""
    if code:
        import socket

        line = alert_header(code, host or socket.gethostname(), moment or datetime.now(UTC))
        header = f"<b>{escape(line, 'html')}</b>" if parse_mode == "html" else line
    label_room = len(" (99/99)") if header else len("(99/99)\n")
    budget = limit - RESERVE - telegram_length(header) - label_room - 1
    if budget < 200:
        raise ValueError("the alert header leaves no room for the text")
    chunks = _split(text.strip("\n"), parse_mode, budget)
    total = len(chunks)
    parts = []
    for index, chunk in enumerate(chunks, start=1):
        label = f"({index}/{total})" if total > 1 else ""
        if header:
            first = f"{header} {label}" if label else header
            body = f"{first}\n{chunk}" if chunk else first
        else:
            body = f"{label}\n{chunk}" if label else chunk
        key = dedupe_key(chat_id, text, code, parse_mode, silent, f"{index}/{total}")
        parts.append(MessagePart(text=body, dedupe_key=key))
    return parts


def _split(text: str, parse_mode: str, budget: int) -> list[str]:
    """Greedy packing of escaped lines into chunks of at most `budget`; a line longer than the
    budget is cut (between characters, never inside an HTML entity)."""
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for raw_line in text.split("\n"):
        for piece in _cut_line(raw_line, parse_mode, budget):
            cost = telegram_length(piece) + (1 if current else 0)
            if current and size + cost > budget:
                chunks.append("\n".join(current))
                current, size = [], 0
                cost = telegram_length(piece)
            current.append(piece)
            size += cost
    chunks.append("\n".join(current))
    return chunks


def _cut_line(raw_line: str, parse_mode: str, budget: int) -> list[str]:
    escaped = escape(raw_line, parse_mode)
    if telegram_length(escaped) <= budget:
        return [escaped]
    pieces, current, size = [], [], 0
    for ch in raw_line:
        piece = escape(ch, parse_mode)
        cost = telegram_length(piece)
        if size + cost > budget:
            pieces.append("".join(current))
            current, size = [], 0
        current.append(piece)
        size += cost
    if current:
        pieces.append("".join(current))
    return pieces


def count_suffix(count: int, first_seen: float, last_seen: float, repeat: bool) -> str:
    """The line appended at send time to a message that stands for several identical alerts."""
    if count <= 1 and not repeat:
        return ""
    first = datetime.fromtimestamp(first_seen, UTC).strftime("%H:%M:%S")
    last = datetime.fromtimestamp(last_seen, UTC).strftime("%H:%M:%S")
    again = "again " if repeat else ""
    span = f"at {first} UTC" if count <= 1 else f"between {first} and {last} UTC"
    return f"\n(repeated {again}{count}× {span})"
