"""The batch scheduler's policy (twin.inference.schedule.schedule), without a model: plain rows in, a plan out."""

from __future__ import annotations

from dataclasses import dataclass

from twin.inference.schedule import schedule


@dataclass(eq=False)
class Row:
    name: str
    tokens: int = 100
    cancelled: bool = False
    finished: bool = False


def names(rows) -> list[str]:
    return [r.name for r in rows]


def test_first_come_first_served_up_to_the_row_cap():
    waiting = [Row(f"w{i}") for i in range(5)]
    plan = schedule(waiting, [Row("r0"), Row("r1")], max_batch=4, max_tokens=10_000)
    assert names(plan.admit) == ["w0", "w1"] and plan.drop == [] and plan.retire == []


def test_the_token_cap_stops_admission_without_overtaking():
    # w1 does not fit the tokens left; w2 would, but never jumps the queue (no starving long prompts).
    waiting = [Row("w0", 300), Row("w1", 500), Row("w2", 50)]
    plan = schedule(waiting, [Row("r0", 400)], max_batch=8, max_tokens=1000)
    assert names(plan.admit) == ["w0"]


def test_ended_and_abandoned_rows_retire_and_free_their_room_this_turn():
    running = [Row("done", 600, finished=True), Row("gone", 300, cancelled=True), Row("on", 100)]
    waiting = [Row("left", 50, cancelled=True), Row("w0", 800), Row("w1", 200)]
    plan = schedule(waiting, running, max_batch=3, max_tokens=1000)
    assert names(plan.retire) == ["done", "gone"]
    assert names(plan.drop) == ["left"]
    # 100 stays in flight: w0 (800) fits, w1 (200) would pass the cap of 1000.
    assert names(plan.admit) == ["w0"]


def test_nothing_to_do():
    plan = schedule([], [], max_batch=8, max_tokens=1000)
    assert (plan.admit, plan.drop, plan.retire) == ([], [], [])


def test_a_request_alone_over_the_cap_waits_rather_than_crashing():
    # The scheduler's submit() refuses such requests up front; the policy itself just never admits them.
    plan = schedule([Row("huge", 5000)], [], max_batch=8, max_tokens=1000)
    assert plan.admit == []
