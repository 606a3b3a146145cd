import uuid

from core.ids import uuid7


def test_a_uuid7_is_a_valid_rfc_9562_version_7_uuid() -> None:
    value = uuid7()

    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert uuid.UUID(str(value)) == value


def test_uuid7s_sort_by_the_millisecond_they_were_made_in_and_as_text_too() -> None:
    start = 1_795_000_000_000 * 1_000_000  # 2026-11-18, in nanoseconds
    made = [uuid7(now_ns=start + millis * 1_000_000) for millis in (0, 1, 2, 1000, 86_400_000)]

    assert made == sorted(made)
    assert [str(value) for value in made] == sorted(str(value) for value in made)
    assert made[0].int >> 80 == 1_795_000_000_000


def test_uuid7s_made_in_the_same_millisecond_differ() -> None:
    values = {uuid7(now_ns=1_795_000_000_000_000_000) for _ in range(10_000)}

    assert len(values) == 10_000
