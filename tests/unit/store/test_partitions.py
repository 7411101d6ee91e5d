"""The pure parts of `partitions`: month arithmetic, names, bounds as PostgreSQL prints them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from nubes.store import partitions
from nubes.store.partitions import Partition


def _at(year: int, month: int, day: int = 1) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "count", "expected"),
    [
        (_at(2026, 11), 1, _at(2026, 12)),
        (_at(2026, 11), 2, _at(2027, 1)),
        (_at(2026, 12), 13, _at(2028, 1)),
        (_at(2027, 1), -1, _at(2026, 12)),
    ],
)
def test_months_add_across_years(start: datetime, count: int, expected: datetime) -> None:
    assert partitions.add_months(start, count) == expected


def test_month_start_and_name() -> None:
    month = partitions.month_start(datetime(2027, 2, 28, 23, 59, tzinfo=UTC))
    assert month == _at(2027, 2)
    assert partitions.month_name(month) == "messages_2027_02"


def test_partition_names_are_told_apart_from_tables() -> None:
    for name in ("messages_legacy", "messages_default", "messages_2027_02"):
        assert partitions.is_partition_name(name)
    for name in ("messages", "session_log", "messages_2027", "messages_legacy_x"):
        assert not partitions.is_partition_name(name)
    assert not partitions.include_name("messages_2027_02", "table", {})
    assert partitions.include_name("messages", "table", {})
    assert partitions.include_name("messages_2027_02", "index", {})


def test_bounds_parse_as_postgresql_prints_them() -> None:
    month = partitions._partition(
        "messages_2027_01",
        "FOR VALUES FROM ('2027-01-01 00:00:00+00') TO ('2027-02-01 00:00:00+00')",
    )
    assert month == Partition("messages_2027_01", _at(2027, 1), _at(2027, 2))
    legacy = partitions._partition(
        "messages_legacy", "FOR VALUES FROM (MINVALUE) TO ('2027-01-01 00:00:00+00')"
    )
    assert legacy == Partition("messages_legacy", None, _at(2027, 1))
    default = partitions._partition("messages_default", "DEFAULT")
    assert default.is_default


def test_months_ahead_reach_two_past_the_current_one() -> None:
    months = partitions._months_ahead(_at(2027, 1), datetime(2027, 2, 14, tzinfo=UTC))
    assert months == [_at(2027, 1), _at(2027, 2), _at(2027, 3), _at(2027, 4)]
    assert partitions._months_ahead(_at(2027, 5), datetime(2027, 2, 14, tzinfo=UTC)) == []
