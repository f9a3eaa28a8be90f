"""Data errors that list every offender (the first 20 and a count) in one message."""

from __future__ import annotations

from collections.abc import Sequence

from bench.errors import BenchError


class DataError(BenchError):
    """A dataset cannot be read as described."""


class MissingData(DataError):
    """A file or folder the dataset names is not there (messages add where to get it)."""


def offenders(what: str, items: Sequence[object], where: str, limit: int = 20) -> str:
    """``"<where>: 3 missing image files: a, b, c"`` with at most ``limit`` items shown."""
    shown = ", ".join(str(i) for i in list(items)[:limit])
    more = f" … and {len(items) - limit} more" if len(items) > limit else ""
    return f"{where}: {len(items)} {what}: {shown}{more}"
