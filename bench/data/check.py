"""``bench data check``: what a suite's data looks like, and whether anything is wrong."""

from __future__ import annotations

import pandas as pd

from bench.data.leakage import LeakageReport, check_leakage
from bench.data.store import ImageStore


def used_parts(plan) -> list[tuple[str, int]]:
    """(ref, image size) of every part the plan trains or tests on."""
    out: list[tuple[str, int]] = []
    for stage in plan.stages:
        out += [(r, stage.spec.image_size) for r in stage.spec.data]
    for cell in plan.cells:
        out += [(cell.spec.train, cell.spec.image_size), (cell.spec.test, cell.spec.image_size)]
    return list(dict.fromkeys(out))


def counts_table(ds) -> str:
    """Images per class (rows) and part (columns), with totals."""
    recs = ds.records.assign(part=ds.records["part"].replace("", "(none)"))
    table = pd.crosstab(recs["label"], recs["part"], margins=True, margins_name="total")
    return table.to_string()


def check_data(plan, store: ImageStore | None) -> tuple[str, LeakageReport]:
    """A printable summary of every dataset and the leakage report (pixels compared when a
    store is given: the used parts are decoded into the cache on the way)."""
    lines = []
    for name, ds in plan.datasets.items():
        lines.append(f"dataset {name} ({ds.spec.format}): {len(ds.records)} images, "
                     f"{len(ds.classes)} classes, {ds.records['group'].nunique()} groups")
        lines.append(counts_table(ds))
        for part in ds.parts:
            lines.append(f"  manifest {name}:{part}  sha256 {ds.manifest_hash(part)}")
        lines.append("")
    if store is not None:
        for ref, size in used_parts(plan):
            store.get(ref, size)
    report = check_leakage(plan, store.pixel_hashes if store is not None else None)
    lines.append("leakage: " + ("no test image is trained on" if report.ok else
                                f"{len(report.errors)} problem(s)"))
    lines += [f"  ERROR {e}" for e in report.errors]
    lines += [f"  warning {w}" for w in report.warnings]
    return "\n".join(lines), report
