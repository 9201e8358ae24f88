"""Timestamp spellings the contracts allow, for the sample generators: the same instant written as a source
would write it (`T` or space, 0/3/6 fraction digits, `Z`, no offset or ±HH:MM)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

MICROS = 1_000_000
DAY_US = 86_400 * MICROS
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DAY_TEXTS: dict[int, str] = {}


@dataclass(frozen=True)
class TsStyle:
    """One spelling: its separator, fraction digits and offset (an instant in µs since 1970 → its text)."""

    separator: str  # "T" or " "
    fraction_digits: int  # 0, 3 or 6
    suffix: str  # "Z", "" (no offset means UTC) or "±HH:MM"
    offset_minutes: int

    def truncate(self, ts_us: int) -> int:
        """Drop the sub-second digits this spelling cannot carry, so the text is the exact instant."""
        unit = 10 ** (6 - self.fraction_digits)
        return ts_us - ts_us % unit

    def format(self, ts_us: int) -> str:
        day, us = divmod(ts_us + self.offset_minutes * 60 * MICROS, DAY_US)
        seconds, micro = divmod(us, MICROS)
        minutes, second = divmod(seconds, 60)
        hour, minute = divmod(minutes, 60)
        text = f"{_day_text(day)}{self.separator}{hour:02d}:{minute:02d}:{second:02d}"
        if self.fraction_digits:
            text += "." + f"{micro:06d}"[: self.fraction_digits]
        return text + self.suffix


def _day_text(day: int) -> str:
    """YYYY-MM-DD of a day number since 1970-01-01 (cached: a sample spans a few days)."""
    text = _DAY_TEXTS.get(day)
    if text is None:
        text = _DAY_TEXTS[day] = date.fromordinal(_EPOCH_ORDINAL + day).isoformat()
    return text


CANONICAL = TsStyle("T", 6, "Z", 0)
