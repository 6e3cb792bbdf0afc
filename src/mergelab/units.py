"""Byte sizes as people write them: ``"2GB"``, ``"500MiB"``, ``"1.5G"``, ``"4096"``.

Decimal prefixes (K, M, G, T, P with or without a trailing ``B``) are powers of 1000, binary
ones (KiB, MiB, GiB, TiB, PiB, or Ki, Mi, ...) powers of 1024, as in IEC 80000-13. Units are
case-insensitive and a trailing ``b`` means bytes, never bits (sizes here are file sizes).
"""

from __future__ import annotations

import re
from fractions import Fraction

from mergelab.errors import ConfigError

_PREFIXES = "kmgtp"
_SIZE_RE = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)$")
_DECIMAL_UNITS = ("B", "KB", "MB", "GB", "TB", "PB")


def _multiplier(unit: str) -> int | None:
    """Bytes per unit for a lower-case unit, or None when it is not a unit."""
    if unit in ("", "b"):
        return 1
    prefix, rest = unit[0], unit[1:]
    if prefix not in _PREFIXES:
        return None
    power = _PREFIXES.index(prefix) + 1
    if rest in ("", "b"):
        return 1000**power
    if rest in ("i", "ib"):
        return 1024**power
    return None


def parse_size(text: str | int) -> int:
    """A size in bytes from ``text`` (an int is returned as is); ConfigError on anything else.

    Fractions are exact (``"1.5G"`` is 1_500_000_000) and round to the nearest byte.
    """
    if isinstance(text, bool) or not isinstance(text, (int, str)):
        raise ConfigError(f"size {text!r} is not a number of bytes; write e.g. 2GB, 500MiB or 4096")
    if isinstance(text, int):
        if text < 0:
            raise ConfigError(f"size {text} is negative; give a number of bytes >= 0")
        return text
    match = _SIZE_RE.match(text.strip().lower())
    multiplier = _multiplier(match.group(2)) if match else None
    if match is None or multiplier is None:
        raise ConfigError(
            f"size {text!r} is not understood; write a number with an optional unit "
            "(B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. 2GB or 500MiB"
        )
    return round(Fraction(match.group(1)) * multiplier)


def format_size(n: int) -> str:
    """``n`` bytes in decimal units with two decimals (``"2.20 GB"``); below 1000: ``"512 B"``."""
    if abs(n) < 1000:
        return f"{n} B"
    value = n / 1000
    for unit in _DECIMAL_UNITS[1:-1]:
        # Move up a unit when rounding would print 1000.00 (999_999_999 -> "1.00 GB").
        if round(abs(value), 2) < 1000:
            return f"{value:.2f} {unit}"
        value /= 1000
    return f"{value:.2f} {_DECIMAL_UNITS[-1]}"
