"""``bench status``: finished / running / failed / killed / pending per stage and per cell."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING

from bench.plan import Plan
from bench.track import RunRecord, Tag

if TYPE_CHECKING:
    from bench.execute.leases import Leases

STATES = ("FINISHED", "RUNNING", "FAILED", "KILLED", "pending")


def _state(status: Mapping[str, RunRecord], key: str) -> str:
    r = status.get(key)
    return r.status if r else "pending"


def count_status(plan: Plan, status: Mapping[str, RunRecord]) -> Counter:
    """Trials of the plan per state (``pending``: no run yet)."""
    c: Counter = Counter({s: 0 for s in STATES})
    c.update(_state(status, t.key) for t in plan.trials)
    return c


def describe_status(plan: Plan, status: Mapping[str, RunRecord],
                    leases: Leases | None = None) -> str:
    """A table of stages and cells with their trial counts per state, the running units with
    their owner, lease and last heartbeat (from ``leases``, the claims store), and the failure
    reasons."""

    lines = [f"suite {plan.suite.name}"]
    running: list[str] = []
    if plan.stages:
        lines.append("")
        lines.append("stages:")
        for s in plan.stages:
            st = _state(status, s.key)
            lines.append(f"  {st.lower():<9} {s.display}")
    lines.append("")
    head = f"  {'cell':<44}" + "".join(f"{h.lower():>10}" for h in STATES)
    lines.append(head)
    total: Counter = Counter({s: 0 for s in STATES})
    failures: list[str] = []
    for c in plan.cells:
        n = Counter({s: 0 for s in STATES})
        for t in plan.trials_of(c):
            st = _state(status, t.key)
            n[st] += 1
            r = status.get(t.key)
            if st in ("FAILED", "KILLED") and r is not None:
                failures.append(f"  {c.display} seed={t.seed}: {st.lower()}: "
                                f"{r.tags.get(Tag.FAILURE, '(no reason recorded)')}")
        total += n
        lines.append(f"  {c.display:<44}" + "".join(f"{n[s]:>10}" for s in STATES))
    lines.append(f"  {'total':<44}" + "".join(f"{total[s]:>10}" for s in STATES))
    live = [r for r in status.values() if r.status == "RUNNING" and r.kind != "cell"]
    rows = leases.rows(r.key for r in live) if leases is not None and live else {}
    for r in live:
        row = rows.get(r.key)
        if row is not None and row.run_id == r.run_id:
            alive = "alive" if leases is not None and leases.live(row) else \
                "dead (will be redone)"
            lease = f"lease generation {row.generation}, heartbeat {row.age:.0f} s ago, {alive}"
        else:
            lease = "no lease held for it: dead (will be redone)"
        running.append(f"  {r.kind} {r.tags.get('mlflow.runName', r.key[:12])}: "
                       f"{r.tags.get(Tag.OWNER, '?')}, {lease}")
    if running:
        lines += ["", "running:", *running]
    if failures:
        lines += ["", "failed or killed:", *failures]
    return "\n".join(lines)


def describe_cost(plan: Plan, status: Mapping[str, RunRecord]) -> str:
    """``bench status --cost``: the cost model's error per unit kind on the finished units,
    out of sample (:func:`bench.plan.rates.cross_errors`)."""
    from bench.plan.rates import cross_errors, finished_units

    units = finished_units(plan, status)
    rows = cross_errors(units)
    lines = ["", f"cost model on {len(units)} finished unit(s) (each half of them predicted by "
             "the rates fitted to the other half):",
             f"  {'unit kind':<24}{'units':>7}{'measured s':>12}{'predicted s':>13}{'error':>9}"]
    for r in rows:
        err = f"{100 * r.error:+.0f} %" if r.error == r.error else "–"
        lines.append(f"  {r.kind:<24}{r.units:>7}{r.measured:>12.1f}{r.predicted:>13.1f}"
                     f"{err:>9}")
    if rows:
        m = sum(r.measured for r in rows)
        p = sum(r.predicted for r in rows)
        lines.append(f"  {'total':<24}{sum(r.units for r in rows):>7}{m:>12.1f}{p:>13.1f}"
                     f"{(f'{100 * (p - m) / m:+.0f} %' if m > 0 else '–'):>9}")
    else:
        lines.append("  (no finished units to check the model on)")
    return "\n".join(lines)
