"""The admission gate, without a model: ``slots`` decoding + ``queue_size`` waiting, then 503s."""

import threading
from concurrent.futures import Future

import pytest

from twin.serve.gate import Gate, Overloaded


def test_gate_holds_slots_plus_queue_then_refuses_with_retry_after():
    gate = Gate(queue_size=3, slots=2)
    for _ in range(5):
        gate.reserve()
    assert gate.pending == 5
    with pytest.raises(Overloaded) as e:
        gate.reserve()
    # 6th request waits ceil(6 / 2) = 3 waves of the 1 s starting latency
    assert e.value.retry_after == 3
    gate.release(seconds=11.0)  # smoothed latency 0.8 * 1 + 0.2 * 11 = 3 s
    gate.reserve()
    with pytest.raises(Overloaded) as e:
        gate.reserve()
    assert e.value.retry_after == 9


def test_a_tracked_place_is_freed_however_its_reply_ends():
    gate = Gate(queue_size=0, slots=1)
    gate.reserve()
    future: Future = Future()
    gate.track(future, threading.Event())
    with pytest.raises(Overloaded):
        gate.reserve()
    future.cancel()
    assert gate.pending == 0
    gate.reserve()
