"""Pure formatting helpers: sizes, ages, percentages, clock times.

Nothing here reads a clock: callers pass `now` (always `engine.now()`), so the same
inventory renders the same text in tests and snapshots. Unknown values are "—".
"""
from __future__ import annotations

import time
from typing import Callable

DASH = "—"

_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


class Num(float):
    """A number that sorts as a number in a FastTable but shows as formatted text.

    FastTable sorts int/float cells numerically and draws `str(cell)`, so
    `Num(0.42, "42%")` sorts by 0.42 and reads "42%".
    """

    __slots__ = ("text",)

    def __new__(cls, value: float, text: str) -> "Num":
        obj = super().__new__(cls, value)
        obj.text = text
        return obj

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Num({float(self)!r}, {self.text!r})"


def _scaled(value: float, units: tuple[str, ...], whole: tuple[str, ...] = ()) -> tuple[float, str]:
    """Scale to the largest unit that keeps the *shown* number under 1024
    (1023.96 GiB reads "1.0 TiB", not "1024.0 GiB"). Units in `whole` show no decimals."""
    unit = units[0]
    for unit in units:
        shown = round(value) if unit in whole else round(value, 1)
        if abs(shown) < 1024 or unit == units[-1]:
            break
        value /= 1024
    return value, unit


def size_bytes(n: int | float | None) -> str:
    """1536 → "1.5 KiB"; whole bytes below 1 KiB; "—" when unknown."""
    if n is None:
        return DASH
    value, unit = _scaled(float(n), _BYTE_UNITS, whole=("B",))
    return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"


def size_mib(mib: int | float | None) -> str:
    """4096 → "4.0 GiB"; 512 → "512 MiB"; "—" when unknown."""
    if mib is None:
        return DASH
    value, unit = _scaled(float(mib), _BYTE_UNITS[2:], whole=("MiB",))
    return f"{value:.0f} {unit}" if unit == "MiB" else f"{value:.1f} {unit}"


def mib_of(used: int | float | None, total: int | float | None) -> str:
    """"62.1 / 128.0 GiB": both in the unit that suits the total."""
    if total is None or total <= 0:
        return f"{size_mib(used)} / {DASH}"
    _, unit = _scaled(float(total), _BYTE_UNITS[2:], whole=("MiB",))
    scale = 1024 ** _BYTE_UNITS[2:].index(unit)
    fmt = "{:.0f}" if unit == "MiB" else "{:.1f}"
    shown_used = DASH if used is None else fmt.format(used / scale)
    return f"{shown_used} / {fmt.format(total / scale)} {unit}"


def duration(seconds: float | None) -> str:
    """12 → "12s"; 184 → "3m 4s"; 7500 → "2h 5m"; 93600 → "1d 2h"; "—" when unknown."""
    if seconds is None:
        return DASH
    s = int(max(0.0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def ago(seconds: float | None) -> str:
    """"3m 4s ago"; "never" when there is no time at all."""
    return "never" if seconds is None else f"{duration(seconds)} ago"


def stale(seconds: float | None) -> str:
    """The data-age marker of anything whose host is not live."""
    return "stale · never seen" if seconds is None else f"stale · {ago(seconds)}"


FRESH = 5.0                 # seconds: a live age under this reads FRESH_TEXT
FRESH_TEXT = "<5s ago"


class Age:
    """How old a fact is, for a table cell. A table with a clock draws it with the
    clock of that moment, so the table and a dialog opened at the same time agree;
    as text (str, search) it reads as at `now`, when the row was built.

    Sorts by its timestamp (youngest first; never seen last of all).
    """

    __slots__ = ("at", "live", "now", "source")

    def __init__(self, at: float | None, live: bool, now: float,
                 source: "Callable[[], float | None] | None" = None) -> None:
        # `source`, if given, says the timestamp as of now: a fact confirmed again
        # since the row was built (a VM the stats pass saw) is drawn with its new age.
        self.at, self.live, self.now, self.source = at, live, now, source

    @property
    def sort_value(self) -> float:
        return float("inf") if self.at is None else -self.at

    def text(self, now: float, width: int | None = None) -> str:
        """"2m 5s ago", "stale · 2m 5s ago"; in fewer cells than that a stale age
        drops its marker (the row's state says stale) rather than be cut."""
        at = self.at
        if self.source is not None:
            newer = self.source()
            if newer is not None and (at is None or newer > at):
                at = newer
        if at is None:
            if self.live:
                return DASH
            return stale(None) if width is None or width >= len(stale(None)) else "never"
        age = max(0.0, now - at)
        if self.live:
            # Under FRESH seconds a live fact reads "<5s ago": what a stats pass keeps
            # confirming, and a line that need not be drawn again every second.
            return FRESH_TEXT if age < FRESH else ago(age)
        full = stale(age)
        return full if width is None or len(full) <= width else ago(age)

    def __str__(self) -> str:
        return self.text(self.now)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Age) and (self.at, self.live) == (other.at, other.live)

    def __hash__(self) -> int:
        return hash((self.at, self.live))

    def __repr__(self) -> str:
        return f"Age({self.at!r}, live={self.live!r}, now={self.now!r})"


def percent(value: float | None) -> str:
    """42.4 → "42%"; 3.42 → "3.4%" (small values keep a decimal); "—" when unknown."""
    if value is None:
        return DASH
    return f"{value:.1f}%" if abs(value) < 10 else f"{value:.0f}%"


def ratio(part: int | None, whole: int | None) -> str:
    """"2/3"; "—" when either side is unknown."""
    if part is None or whole is None:
        return DASH
    return f"{part}/{whole}"


def yes_no(flag: bool | None) -> str:
    return DASH if flag is None else ("yes" if flag else "no")


def clock(ts: float | None, now: float) -> str:
    """A wall time short enough for a table: "14:03:22" today, else "Jun 13 10:00"."""
    if ts is None:
        return DASH
    t, n = time.localtime(ts), time.localtime(now)
    if (t.tm_year, t.tm_yday) == (n.tm_year, n.tm_yday):
        return time.strftime("%H:%M:%S", t)
    if t.tm_year == n.tm_year:
        return time.strftime("%b %d %H:%M", t)
    return time.strftime("%Y-%m-%d", t)


def timestamp(ts: float | None) -> str:
    """Full local time: "2025-06-15 14:03:22"."""
    if ts is None:
        return DASH
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def or_dash(value: object) -> str:
    """The value as text, or "—" for None and ""."""
    if value is None or value == "":
        return DASH
    return str(value)
