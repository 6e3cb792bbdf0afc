"""parse_size / format_size against hand-computed byte counts."""

from __future__ import annotations

import pytest

from mergelab.errors import ConfigError
from mergelab.units import format_size, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2GB", 2 * 10**9),
        ("500MiB", 500 * 2**20),
        ("1.5G", 1_500_000_000),
        ("4096", 4096),
        (4096, 4096),
        ("0", 0),
        ("1 kb", 1000),
        ("1KiB", 1024),
        ("3Ti", 3 * 2**40),
        ("0.5KiB", 512),
        ("1.1GB", 1_100_000_000),  # exact, no float rounding error
        ("  7 B ", 7),
        ("2TB", 2 * 10**12),
    ],
)
def test_parse_size(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "abc", "2XB", "-1", "1e9", "2 G B", "GB", -5, True, 1.5])
def test_parse_size_rejects_junk_naming_it(bad: object) -> None:
    with pytest.raises(ConfigError) as info:
        parse_size(bad)  # type: ignore[arg-type]
    assert repr(bad) in str(info.value) or str(bad) in str(info.value)


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.00 KB"),
        (2_200_000_000, "2.20 GB"),
        (1_234_567, "1.23 MB"),
        (999_994_999, "999.99 MB"),
        (999_999_999, "1.00 GB"),  # would round to 1000.00 MB
        (5 * 10**15, "5.00 PB"),
    ],
)
def test_format_size(n: int, expected: str) -> None:
    assert format_size(n) == expected
