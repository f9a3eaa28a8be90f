"""Suite errors that point at the file, line, column and field path of every problem."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bench.errors import BenchError

Loc = tuple[str | int, ...]


def format_path(loc: Loc) -> str:
    """``('grid', 'protocols', 1)`` → ``grid.protocols[1]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<suite>"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a close match exists, else ``''``."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True)
class Problem:
    """One problem of a suite: where (field path) and what."""

    loc: Loc
    message: str


@dataclass(frozen=True)
class Located(Problem):
    """A problem with its place in the text: ``where`` is ``file:line:col`` or ``--set k=v``."""

    where: str = ""

    def __str__(self) -> str:
        if not self.loc:
            return f"{self.where}: {self.message}"
        return f"{self.where} {format_path(self.loc)}: {self.message}"


class SuiteError(BenchError):
    """A suite failed to load. ``str()`` lists every problem, one per line."""

    def __init__(self, problems: Sequence[Located]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
