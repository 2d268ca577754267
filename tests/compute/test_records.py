"""The oracle itself: records.parse must accept clean logs and catch gaps and torn records."""

from __future__ import annotations

from types import ModuleType

BLOCK = 4096


def image(records: ModuleType, count: int, tail_blocks: int = 4) -> bytearray:
    return bytearray(
        b"".join(records.record(n) for n in range(1, count + 1)) + bytes(BLOCK * tail_blocks)
    )


def test_clean_log(records: ModuleType) -> None:
    assert records.parse(bytes(image(records, 7))) == (7, [])
    assert records.parse(bytes(BLOCK * 3)) == (0, [])
    assert len(records.record(1)) == BLOCK


def test_gap_is_a_problem(records: ModuleType) -> None:
    data = image(records, 7)
    data[3 * BLOCK : 4 * BLOCK] = bytes(BLOCK)  # record 4 lost, 5..7 landed
    k, problems = records.parse(bytes(data))
    assert k == 3 and len(problems) == 3 and "gap" in problems[0]


def test_torn_record_is_a_problem(records: ModuleType) -> None:
    data = image(records, 5)
    torn = records.record(6)[:2048] + bytes(2048)
    data[5 * BLOCK : 6 * BLOCK] = torn
    k, problems = records.parse(bytes(data))
    assert k == 5 and problems == ["record 6: checksum mismatch (torn or corrupt)"]


def test_misplaced_record_is_a_problem(records: ModuleType) -> None:
    data = image(records, 3)
    data[3 * BLOCK : 4 * BLOCK] = records.record(9)
    assert records.parse(bytes(data)) == (3, ["record 4: holds number 9"])
