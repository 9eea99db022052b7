"""The offset ledger commits only past messages whose effects are stored."""

from __future__ import annotations

import random
import threading

from vigil.scale.offsets import OffsetLedger


def test_position_is_the_first_offset_not_done_per_partition() -> None:
    ledger = OffsetLedger()
    for offset in range(5):
        ledger.submitted(0, offset)
        ledger.submitted(1, 100 + offset)
    for offset in (0, 1, 3):
        ledger.done(0, offset)
    ledger.done(1, 104)
    assert ledger.committable() == {0: 2}
    ledger.done(0, 2)
    assert ledger.committable() == {0: 4}
    ledger.mark_committed({0: 4})
    assert ledger.committable() == {}
    assert ledger.in_flight() == 1 + 5


def test_forgotten_partitions_ignore_late_completions() -> None:
    ledger = OffsetLedger()
    ledger.submitted(2, 7)
    ledger.forget({2})
    ledger.done(2, 7)
    assert ledger.committable() == {} and ledger.in_flight() == 0


def test_concurrent_completion_never_commits_past_a_pending_offset() -> None:
    ledger = OffsetLedger()
    offsets = list(range(2000))
    for offset in offsets:
        ledger.submitted(0, offset)
    shuffled = offsets[:]
    random.Random(0).shuffle(shuffled)
    withheld = shuffled.pop()  # one message is never stored
    threads = [threading.Thread(target=lambda part=shuffled[i::4]: [ledger.done(0, o) for o in part]) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ledger.committable() == ({0: withheld} if withheld else {})
    ledger.done(0, withheld)
    assert ledger.committable() == {0: 2000}
