"""The leakage guard: no test image may be trained on, under its own name or another.

Before anything trains, every evaluation test part is compared with every part something trains
on (protocol train parts and pre-training stage data):
- the same record id of the same dataset, or the same image file path → error;
- the same decoded pixels (sha256 at native resolution, from the decoded cache) → error: the same
  picture under another name;
- the same group (e.g. lesion_id) on both sides → warning (images of one lesion are correlated).
A suite may set ``allow_leakage: <reason>``; errors then become warnings and the reason is
recorded with every run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bench.config.names import parse_ref
from bench.data.errors import offenders

PixelHashes = Callable[[str], list[str]]


@dataclass
class LeakageReport:
    """What the guard found."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def usage(plan) -> tuple[list[str], list[str]]:
    """(test refs, training refs) of a plan's cells and the stages they need."""
    tests, trains = [], []
    for cell in plan.cells:
        tests.append(cell.spec.test)
        trains.append(cell.spec.train)
    for stage in plan.stages:
        trains.extend(stage.spec.data)
    return list(dict.fromkeys(tests)), list(dict.fromkeys(trains))


def check_leakage(plan, pixel_hashes: PixelHashes | None) -> LeakageReport:
    """Compare every test part with every training part of ``plan``.

    ``pixel_hashes(ref)`` returns the decoded-pixel hashes of a part's records (None: skip the
    pixel comparison).
    """
    report = LeakageReport()
    tests, trains = usage(plan)
    frames = {}
    for ref in tests + trains:
        ds, part = parse_ref(ref)
        frames[ref] = plan.datasets[ds].part(part)
    for t in tests:
        tdf = frames[t]
        t_ds = parse_ref(t)[0]
        t_hash = dict(zip(pixel_hashes(t), tdf["id"], strict=True)) if pixel_hashes else {}
        for s in trains:
            sdf = frames[s]
            where = f"test {t} vs training {s}"
            if parse_ref(s)[0] == t_ds:
                same = sorted(set(tdf["id"]) & set(sdf["id"]))
                if same:
                    report.errors.append(offenders("images in both (same id)", same, where))
                groups = sorted(set(tdf["group"]) & set(sdf["group"]) - set(same))
                if groups:
                    report.warnings.append(offenders("groups on both sides (e.g. lesions)",
                                                     groups, where))
            paths = sorted((set(tdf["path"]) & set(sdf["path"])) - {""})
            if paths and parse_ref(s)[0] != t_ds:
                report.errors.append(offenders("image files in both (same path)", paths, where))
            if pixel_hashes:
                s_ids = sdf["id"].tolist()
                dup = [f"{t_hash[h]} = {sid}" for h, sid in zip(pixel_hashes(s), s_ids,
                                                                strict=True)
                       if h in t_hash and (parse_ref(s)[0] != t_ds or t_hash[h] != sid)]
                if dup:
                    report.errors.append(offenders("identical pictures (same decoded pixels)",
                                                   dup, where))
    if plan.suite.allow_leakage and report.errors:
        report.warnings = [f"allowed ({plan.suite.allow_leakage}): {e}"
                           for e in report.errors] + report.warnings
        report.errors = []
    return report
