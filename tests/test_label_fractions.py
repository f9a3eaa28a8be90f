"""Label fractions: nested, class-stratified subsets drawn by group and redrawn per trial seed,
recorded as manifests; one cell per fraction with its contrasts at every fraction; the
label-efficiency figure."""

from __future__ import annotations

import hashlib
import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import suite_plan, suite_tracker

from bench.cli import main
from bench.data.subsets import label_subset

FRACTIONS = "protocols.lp.label_fractions=[0.25, 0.5, 1.0]"
CONTRAST = "contrasts=[{a: rnd+sup+bt/lp, b: rnd+sup/lp, label: BT vs SL, family: bt}]"


def _grouped(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """600 images of 4 imbalanced classes in groups of 1–5 images, one class per group."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 6, 200)
    group_class = rng.choice(4, 200, p=[0.55, 0.25, 0.15, 0.05])
    groups = np.repeat([f"g{i:03d}" for i in range(200)], sizes)
    labels = np.repeat(group_class, sizes)
    order = rng.permutation(len(labels))  # groups are not contiguous in the part
    return labels[order], groups[order]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_subsets_are_nested_stratified_whole_groups_and_redrawn_per_seed(seed: int) -> None:
    labels, groups = _grouped()
    fractions = [0.01, 0.1, 0.3, 1.0]
    subsets = [set(label_subset(labels, groups, f, seed)) for f in fractions]
    for small, large in itertools.pairwise(subsets):
        assert small < large  # nested within a seed
    assert subsets[-1] == set(range(len(labels)))
    biggest = max(np.unique(groups, return_counts=True)[1])
    for f, rows in zip(fractions, subsets, strict=True):
        idx = np.fromiter(rows, int)
        taken = set(groups[idx])
        assert {g for g in groups if g in taken} == taken
        assert np.isin(groups, list(taken)).sum() == len(idx)  # no group split
        for c in range(4):  # stratified: each class gets its share, by whole groups
            n_c, got = (labels == c).sum(), (labels[idx] == c).sum()
            assert math.ceil(f * n_c) <= got < math.ceil(f * n_c) + biggest
    other = set(label_subset(labels, groups, 0.1, seed + 10))
    assert other != subsets[1]  # another seed, another draw
    assert set(label_subset(labels, groups, 0.1, seed)) == subsets[1]  # the same seed: the same


def test_label_fractions_expand_into_cells_contrasts_and_controls(tiny_suite: Path) -> None:
    plain = suite_plan(tiny_suite, CONTRAST)
    plan = suite_plan(tiny_suite, FRACTIONS, CONTRAST,
                      "controls=[{contrast: BT vs SL, expect: no_difference}]")
    suite = plan.suite
    assert [n for n in suite.protocols if n.startswith("lp")] == ["lp@0.25", "lp@0.5", "lp@1"]
    assert [suite.protocols[f"lp@{f}"].label_fraction for f in ("0.25", "0.5", "1")] == [
        0.25, 0.5, 1.0]
    assert [(c.a, c.b, c.label, c.family) for c in suite.contrasts] == [
        (f"rnd+sup+bt/lp@{f}", f"rnd+sup/lp@{f}", f"BT vs SL @ {f}", "bt")
        for f in ("0.25", "0.5", "1")]
    assert [c.contrast for c in suite.controls] == [f"BT vs SL @ {f}" for f in ("0.25", "0.5",
                                                                               "1")]
    # all the labels: the key and the trials of the unexpanded protocol (finished runs reused)
    keys = {c.name: c.key for c in plan.cells}
    assert keys["rnd+sup/lp@1"] == {c.name: c.key for c in plain.cells}["rnd+sup/lp"]
    full = {t.key for t in plan.trials if t.cell.name == "rnd+sup/lp@1"}
    assert full == {t.key for t in plain.trials if t.cell.name == "rnd+sup/lp"}
    # a fraction: the subset seed varies and is part of the trial key
    quarter = [t for t in plan.trials if t.cell.name == "rnd+sup/lp@0.25"]
    assert len({t.seeds["subset"] for t in quarter}) == len(quarter)
    fixed = suite_plan(tiny_suite, FRACTIONS, CONTRAST, "seeds.vary=[head, order]")
    assert len({t.seeds["subset"] for t in fixed.trials
                if t.cell.name == "rnd+sup/lp@0.25"}) == 1


def test_a_contrast_across_different_fractions_is_refused(tiny_suite: Path, capsys) -> None:
    sets = ["--set", FRACTIONS, "--set", "contrasts=[{a: rnd+sup/ft, b: rnd+sup/lp}]"]
    assert main(["plan", str(tiny_suite), *sets]) == 2
    assert "different label_fractions" in capsys.readouterr().err


def test_an_lr_search_that_would_see_every_label_is_refused(tiny_suite: Path, capsys) -> None:
    sets = ["--set", FRACTIONS, "--set", "protocols.lp.lr_search={method: lr_finder}"]
    assert main(["plan", str(tiny_suite), *sets]) == 2
    assert "an lr search sees every labelled image" in capsys.readouterr().err
    assert main(["plan", str(tiny_suite), "--set", "protocols.lp.lr_search={method: lr_finder}",
                 "--set", "protocols.lp.label_fractions=[1.0]"]) == 0


def test_a_fraction_run_records_its_subsets_and_reports_the_curve(tiny_suite: Path) -> None:
    sets = ["--set", FRACTIONS, "--set", CONTRAST, "--set", "grid.protocols=[lp]",
            "--set", "seeds.count=3"]
    assert main(["run", str(tiny_suite), *sets, "-q"]) == 0
    plan = suite_plan(tiny_suite, *sets[1::2])
    train = plan.datasets["tgt"].part("train")
    runs = {r.key: r for r in suite_tracker(tiny_suite).runs("trial")}
    out = tiny_suite.parent / "out" / "manifests" / "subsets"
    by_seed: dict[int, dict[float, set[str]]] = {}
    for t in plan.trials:
        tags = runs[t.key].tags
        fraction = t.cell.spec.label_fraction
        if fraction == 1:
            assert "bench.subset.tgt:train" not in tags
            continue
        sha = tags["bench.subset.tgt:train"]
        (path,) = out.glob(f"tgt_train@{fraction:g}_{sha[:16]}.csv")
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha  # the manifest it names
        rows = pd.read_csv(path, dtype=str)
        assert int(tags["bench.subset_images"]) == len(rows) < len(train)
        assert set(rows["id"]) <= set(train["id"])
        by_seed.setdefault(t.seed, {})[fraction] = set(rows["id"])
    assert len(by_seed) == 3
    for subsets in by_seed.values():
        assert subsets[0.25] < subsets[0.5]  # nested, as recorded
    assert len({frozenset(s[0.25]) for s in by_seed.values()}) == 3  # redrawn per seed
    rep = tiny_suite.parent / "rep"
    assert main(["report", str(tiny_suite), *sets, "--report-dir", str(rep), "--format",
                 "html", "--format", "markdown", "--format", "csv"]) == 0
    html = (rep / "report.html").read_text()
    section = html[html.index("<h2>Label efficiency</h2>"):]
    assert "<svg" in section[:section.index("</figure>")]
    md = (rep / "report.md").read_text()
    assert "| encoder | 0.25 (9) | 0.5 (18) | 1.0 (36) |" in md
    con = pd.read_csv(rep / "contrasts.csv")
    acc = con[con["metric"] == "accuracy"]
    assert list(acc["label"]) == ["BT vs SL @ 0.25", "BT vs SL @ 0.5", "BT vs SL @ 1"]
    assert set(con["family"]) == {"bt"}  # Holm across the fractions (and both metrics)
