"""Sparklines for table cells: a host's or VM's recent CPU % as block characters.

A fixed 0–100 scale (a flat line at 90 % must look hot, not flat), the newest figure
at the right edge, a blank where a figure is not known (a pass that did not see it).
Built once per row drawn; a table of 10,000 VMs builds its cells as plain strings,
so the cost is a lookup per figure.
"""
from __future__ import annotations

from typing import Sequence

from .format import Num

BLOCKS = "▁▂▃▄▅▆▇█"
GAP = " "
SPARK_WIDTH = 12        # figures shown in a table's "CPU trend" column

# Whole percents 0..100 → their block: one index per figure, no arithmetic per cell.
_BY_PERCENT = tuple(BLOCKS[min(len(BLOCKS) - 1, int(p * len(BLOCKS) / 100))]
                    for p in range(101))


def spark(values: Sequence[float | None], width: int = SPARK_WIDTH) -> str:
    """The last `width` figures as blocks, right-aligned ("" when there are none)."""
    if not values:
        return ""
    table = _BY_PERCENT
    out = [GAP if v is None else table[0 if v <= 0 else 100 if v >= 100 else int(v)]
           for v in values[-width:]]
    text = "".join(out)
    return text.rjust(width) if len(text) < width else text


def spark_cell(values: Sequence[float | None], width: int = SPARK_WIDTH) -> Num | str:
    """A table cell: the sparkline, sorted by the mean of the figures it shows (the
    busiest lately first when sorted in reverse); "" when nothing was sampled yet."""
    text = spark(values, width)
    if not text:
        return ""
    known = [v for v in values[-width:] if v is not None]
    return Num(sum(known) / len(known) if known else -1.0, text)
