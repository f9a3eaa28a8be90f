"""Controls: contrasts whose verdict is known in advance, and whether each came out so.

An A/A control (two cells identical up to their seeds) must never be ``≻``/``≺`` (it may be
``≈`` when the runs allow it, else inconclusive); a planted effect must come out ``≻`` in the
planted direction. A control whose contrast is degenerate or not testable has not passed: it
could not be judged. The report opens with these lines.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bench.analysis.verdicts import BETTER, EQUIVALENT, INCONCLUSIVE, WORSE, ContrastRow
from bench.config.schema import ControlSpec

ALLOWED = {"a_better": (BETTER,), "b_better": (WORSE,), "equivalent": (EQUIVALENT,),
           "no_difference": (EQUIVALENT, INCONCLUSIVE)}
"""The verdicts that pass each expectation."""
SAID = {"a_better": BETTER, "b_better": WORSE, "equivalent": EQUIVALENT,
        "no_difference": "no difference (≈ or inconclusive)"}


@dataclass(frozen=True)
class ControlRow:
    """One control on one metric: what it must give, what it gave."""

    contrast: str
    metric: str
    expect: str
    got: str
    why: str = ""

    @property
    def passed(self) -> bool:
        return self.got in ALLOWED[self.expect]

    @property
    def text(self) -> str:
        """``<contrast> (<metric>): <verdict>, as expected`` or ``…: expected …, got …``."""
        head = f"{self.contrast} ({self.metric})"
        if self.passed:
            return f"{head}: {self.got}, as expected"
        return f"{head}: expected {SAID[self.expect]}, got {self.got}"


def control_rows(controls: Iterable[ControlSpec], rows: list[ContrastRow]) -> list[ControlRow]:
    """The controls judged on the contrasts' verdicts (a control's contrast without a row for a
    metric — no results yet — is 'not testable')."""
    out = []
    for ctl in controls:
        mine = [r for r in rows if r.label == ctl.contrast
                and (ctl.metric is None or r.metric == ctl.metric)]
        if not mine:
            out.append(ControlRow(ctl.contrast, ctl.metric or "–", ctl.expect, "not testable",
                                  ctl.why))
        out += [ControlRow(ctl.contrast, r.metric, ctl.expect, r.verdict, ctl.why) for r in mine]
    return out


def controls_line(rows: list[ControlRow]) -> str:
    """The one line a report opens with: ``Controls: all 2 passed`` or ``Controls: FAILED …``."""
    failed = [r for r in rows if not r.passed]
    if not failed:
        return f"Controls: all {len(rows)} passed"
    return (f"Controls: FAILED {len(failed)} of {len(rows)}: "
            + "; ".join(r.text for r in failed))
