"""The SQLite outbox: order, collapse of identical alerts, pacing, durability across processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from coin_cli.errors import DataError
from coin_cli.monitoring.outbox import Outbox, is_group_chat, pacing_delay

REPO = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def outbox(tmp_path: Path, clock: Clock):
    box = Outbox(tmp_path / "outbox.sqlite", clock=clock)
    yield box
    box.close()


def _send_all(box: Outbox, chat: str, force: bool = False) -> list[str]:
    sent = []
    while (row := box.next_due(chat, force=force)) is not None:
        row = box.mark_sending(row.id)
        box.mark_sent(row.id, chat, telegram_message_id=row.id, attempts=1, timeouts=0)
        sent.append(row.text)
    return sent


def test_fifo_per_chat_and_parts_stay_together(outbox: Outbox):
    outbox.enqueue("42", [("a", None)], parse_mode="html")
    outbox.enqueue("7", [("other chat", None)], parse_mode="html")
    outbox.enqueue("42", [("b 1/2", None), ("b 2/2", None)], parse_mode="html")
    outbox.enqueue("42", [("c", None)], parse_mode="html")
    assert _send_all(outbox, "42") == ["a", "b 1/2", "b 2/2", "c"]
    assert outbox.counts("7") == {"pending": 1}


def test_a_message_that_failed_stays_first_in_line(outbox: Outbox):
    first = outbox.enqueue("42", [("first", None)], parse_mode="html")[0]
    outbox.enqueue("42", [("second", None)], parse_mode="html")
    row = outbox.mark_sending(outbox.next_due("42").id)
    outbox.mark_unsent(row.id, attempts=4, timeouts=1, error="network error: Bad Gateway")
    again = outbox.next_due("42")
    assert again.id == first.id and again.attempts == 4 and again.timeouts == 1
    assert again.last_error == "network error: Bad Gateway"


def test_identical_queued_alerts_collapse_into_one_row_with_a_count(outbox: Outbox, clock: Clock):
    results = []
    for _ in range(5):
        results += outbox.enqueue("42", [("disk full", "k1")], parse_mode="html", dedupe_window=300)
        clock.now += 10
    assert [r.action for r in results] == ["queued"] + ["collapsed"] * 4
    assert len({r.id for r in results}) == 1
    row = outbox.get(results[0].id)
    assert row.count == 5 and row.last_seen - row.first_seen == 40


def test_a_repeat_after_sending_waits_for_the_window_then_goes_with_its_count(outbox: Outbox, clock: Clock):
    outbox.enqueue("42", [("disk full", "k1")], parse_mode="html", dedupe_window=300)
    assert _send_all(outbox, "42") == ["disk full"]
    sent_at = clock.now
    clock.now += 20
    repeat = outbox.enqueue("42", [("disk full", "k1")], parse_mode="html", dedupe_window=300)[0]
    clock.now += 20
    again = outbox.enqueue("42", [("disk full", "k1")], parse_mode="html", dedupe_window=300)[0]
    assert repeat.action == again.action == "deferred" and repeat.id == again.id
    assert repeat.not_before == sent_at + 300
    assert outbox.next_due("42") is None  # nothing due inside the window
    row = outbox.get(repeat.id)
    assert row.repeat and row.count == 2
    clock.now = sent_at + 300
    assert outbox.next_due("42").id == repeat.id


def test_force_sends_deferred_repeats_now(outbox: Outbox, clock: Clock):
    outbox.enqueue("42", [("x", "k")], parse_mode="html", dedupe_window=300)
    _send_all(outbox, "42")
    outbox.enqueue("42", [("x", "k")], parse_mode="html", dedupe_window=300)
    assert outbox.next_due("42") is None
    assert _send_all(outbox, "42", force=True) == ["x"]


def test_outside_the_window_or_without_a_window_nothing_collapses(outbox: Outbox, clock: Clock):
    a = outbox.enqueue("42", [("x", "k")], parse_mode="html", dedupe_window=300)[0]
    clock.now += 301
    b = outbox.enqueue("42", [("x", "k")], parse_mode="html", dedupe_window=300)[0]
    c = outbox.enqueue("42", [("x", "k")], parse_mode="html", dedupe_window=0)[0]
    d = outbox.enqueue("43", [("x", "k")], parse_mode="html", dedupe_window=300)[0]
    assert len({a.id, b.id, c.id, d.id}) == 4


def test_a_rejected_message_is_kept_and_does_not_block_the_queue(outbox: Outbox):
    bad = outbox.enqueue("42", [("bad", "k")], parse_mode="html", dedupe_window=300)[0]
    outbox.enqueue("42", [("good", None)], parse_mode="html")
    outbox.mark_rejected(outbox.mark_sending(bad.id).id, attempts=1, timeouts=0, error="too long")
    assert _send_all(outbox, "42") == ["good"]
    assert outbox.get(bad.id).status == "rejected"
    again = outbox.enqueue("42", [("bad", "k")], parse_mode="html", dedupe_window=300)[0]
    assert again.action == "queued"  # a rejected row never swallows new alerts


def test_pacing_one_message_per_second_per_chat():
    assert pacing_delay([], 100.0, min_interval=1.0, group_per_minute=20, group=False) == 0.0
    assert pacing_delay([99.7], 100.0, min_interval=1.0, group_per_minute=20, group=False) == pytest.approx(0.7)
    assert pacing_delay([98.0], 100.0, min_interval=1.0, group_per_minute=20, group=False) == 0.0


def test_pacing_twenty_per_minute_to_a_group_but_not_to_a_private_chat():
    sends = [40.0 + i * 1.0 for i in range(20)]  # 20 sends between t=40 and t=59
    now = 61.0
    assert pacing_delay(sends, now, min_interval=1.0, group_per_minute=20, group=False) == 0.0
    assert pacing_delay(sends, now, min_interval=1.0, group_per_minute=20, group=True) == pytest.approx(39.0)
    assert pacing_delay(sends[1:], now, min_interval=1.0, group_per_minute=20, group=True) == 0.0


def test_flood_control_block_is_honoured(outbox: Outbox, clock: Clock):
    outbox.block_chat("42", clock.now + 12)
    outbox.block_chat("42", clock.now + 5)  # a shorter block never shortens a longer one
    assert outbox.pacing_wait("42", min_interval=1.0, group_per_minute=20) == pytest.approx(12)


def test_pacing_state_comes_from_the_sends_table(outbox: Outbox, clock: Clock):
    for _ in range(3):
        outbox.enqueue("-100", [("m", None)], parse_mode="html")
    _send_all(outbox, "-100")
    assert outbox.pacing_wait("-100", min_interval=1.0, group_per_minute=3) == pytest.approx(60.0)
    assert outbox.pacing_wait("-100", min_interval=1.0, group_per_minute=20) == pytest.approx(1.0)
    assert is_group_chat("-100") and is_group_chat("@channel") and not is_group_chat("42")


def test_orphaned_sending_rows_return_to_pending(outbox: Outbox):
    row = outbox.enqueue("42", [("m", None)], parse_mode="html")[0]
    outbox.mark_sending(row.id)
    assert outbox.next_due("42") is None
    outbox.recover_and_prune()
    assert outbox.next_due("42").id == row.id


def test_retarget_moves_queued_messages_to_the_new_chat(outbox: Outbox):
    outbox.enqueue("-1", [("m1", None), ("m2", None)], parse_mode="html")
    assert outbox.retarget("-1", "-100777") == 2
    assert _send_all(outbox, "-100777") == ["m1", "m2"]


def test_messages_survive_the_process_and_concurrent_writers_lose_nothing(tmp_path: Path):
    path = tmp_path / "outbox.sqlite"
    script = textwrap.dedent(f"""
        import sys
        from coin_cli.monitoring.outbox import Outbox
        box = Outbox({str(path)!r})
        for i in range(40):
            box.enqueue("42", [(f"{{sys.argv[1]}}-{{i}}", None)], parse_mode="html")
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, name], cwd=REPO) for name in ("p", "q", "r")]
    assert [p.wait(60) for p in procs] == [0, 0, 0]
    box = Outbox(path)
    try:
        texts = [m.text for m in box.messages("pending")]
    finally:
        box.close()
    assert len(texts) == 120 and len(set(texts)) == 120
    for name in ("p", "q", "r"):  # each writer's messages keep their order
        mine = [t for t in texts if t.startswith(name + "-")]
        assert mine == [f"{name}-{i}" for i in range(40)]


def test_delivery_lock_is_exclusive_between_processes(tmp_path: Path):
    path = tmp_path / "outbox.sqlite"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from coin_cli.monitoring.outbox import Outbox
            with Outbox({str(path)!r}).delivery_lock(wait=5) as held:
                print("held" if held else "not", flush=True)
                sys.stdin.readline()
        """)], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        box = Outbox(path)
        with box.delivery_lock(wait=0.2) as held:
            assert not held
        with box.delivery_lock(wait=5, give_up=lambda: True) as held:
            assert not held
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(10) == 0
        with box.delivery_lock(wait=5) as held:
            assert held
        box.close()
    finally:
        if holder.poll() is None:
            holder.kill()


def test_a_corrupt_outbox_is_a_data_error_naming_the_file(tmp_path: Path):
    path = tmp_path / "outbox.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(DataError, match=r"outbox\.sqlite"):
        Outbox(path)


def _open_at(path: str, start: float) -> None:
    while time.time() < start:
        pass
    Outbox(Path(path)).close()


def test_cron_runs_creating_the_outbox_together_all_get_it(tmp_path: Path) -> None:
    # A new file switched to WAL by several processes at once used to fail with "database is locked".
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    for i in range(25):
        start = time.time() + 0.2
        procs = [ctx.Process(target=_open_at, args=(str(tmp_path / f"o{i}.sqlite"), start)) for _ in range(4)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(30)
        assert [proc.exitcode for proc in procs] == [0, 0, 0, 0]
