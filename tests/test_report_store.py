"""Edge cases of the verdicts through ``bench report`` on a real MLflow store: every format
shows what was lost or cannot be tested, instead of printing confident numbers.

Only the command line and the store are used here (no analysis internals), so the same
tests run unchanged against any version of bench.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import fill_store
from scipy import stats

from bench.cli import main
from bench.plan import build_plan, load_suite

SUITE = """\
name: edge
output: {out}
datasets:
  d:
    format: synthetic
    synthetic: {{n_images: 24, image_size: 8}}
    split: {{fractions: {{train: 0.5, test: 0.5}}}}
inits:
{inits}
protocols:
  ft: {{kind: fine_tune, train: d:train, test: d:test, epochs: 1}}
grid: {{inits: [{names}], protocols: [ft]}}
seeds: {{count: {n}}}
report: {{metrics: [accuracy]}}
published:
  B/ft: {{source: "a paper, Table 1", accuracy: {{mean: 0.45, sd: 0.03, n: 12}}}}
  C/ft: {{source: "a paper, text", accuracy: {{mean: 0.5}}}}
contrasts:
  - {{a: A/ft, b: B/ft, family: nan}}
  - {{a: C/ft, b: D/ft, family: constant, margin: 0.01}}
  - {{a: G/ft, b: F/ft, alternative: greater, family: opposite}}
  - {{a: F/ft, b: G/ft, family: chain}}
  - {{a: F/ft, b: G/ft, family: again}}
  - {{a: G/ft, b: H/ft, family: chain}}
  - {{a: F/ft, b: H/ft, alternative: less, family: chain}}
  - {{a: F/ft, b: B/ft, family: holm}}
  - {{a: G/ft, b: B/ft, family: holm}}
  - {{a: H/ft, b: B/ft, family: holm}}
  - {{a: E/ft, b: B/ft, family: holm}}
  - {{a: E/ft, b: F/ft, family: holm}}
  - {{a: E/ft, b: G/ft, family: holm}}
  - {{a: I/ft, b: J/ft, family: plain}}
"""
NAMES = "ABCDEFGHIJ"
N = 12


def _values() -> dict[str, list[float | None]]:
    rng = np.random.default_rng(0)

    def draw(mean: float, sd: float) -> list[float]:
        return rng.normal(mean, sd, N).round(4).tolist()

    return {
        # two finished trials without a finite value
        "A/ft": [0.5, math.nan, math.inf, *draw(0.5, 0.05)[3:]],
        "B/ft": draw(0.45, 0.03),
        "C/ft": [0.5] * N, "D/ft": [0.5] * N,  # both constant and equal
        "E/ft": [0.3] + [math.nan] * (N - 2) + [None],  # one finite value: no test possible
        "F/ft": draw(0.91, 0.005), "G/ft": draw(0.80, 0.005), "H/ft": draw(0.65, 0.04),
        # not significant, and no margin declared
        "I/ft": _exact(0.70065, 0.01246, N, 0), "J/ft": _exact(0.69583, 0.00925, N, 1),
    }


def _exact(mean: float, sd: float, n: int, seed: int) -> list[float]:
    z = np.random.default_rng(seed).standard_normal(n)
    return (mean + sd * (z - z.mean()) / z.std(ddof=1)).tolist()


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("edge")
    inits = "\n".join(f"  {n}: {{arch: tiny_resnet_w8, seed: {i}}}" for i, n in enumerate(NAMES))
    text = SUITE.format(out=tmp / "out", inits=inits, names=", ".join(NAMES), n=N)
    path = tmp / "edge.yaml"
    path.write_text(text)
    plan = build_plan(load_suite(path, env={}))
    values = _values()
    fill_store(plan, tmp / "out", values)
    rep = tmp / "rep"
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no numerical warning may leak
        assert main(["report", str(path), "--out", str(rep), "--format", "markdown", "--format",
                     "html", "--format", "latex", "--format", "csv"]) == 0
    return {"values": values, "md": (rep / "report.md").read_text(),
            "html": (rep / "report.html").read_text(),
            "tex": (rep / "report.tex").read_text() + (rep / "tables.tex").read_text(),
            "contrasts": pd.read_csv(rep / "contrasts.csv", keep_default_na=False,
                                     na_values=[""]),
            "cells": pd.read_csv(rep / "cells.csv"), "rep": rep}


def _row(df: pd.DataFrame, a: str, b: str, family: str) -> pd.Series:
    return df[(df["a"] == a) & (df["b"] == b) & (df["family"] == family)].iloc[0]


def test_non_finite_values_are_counted_not_hidden(report) -> None:
    md, cells = report["md"], report["cells"]
    a = cells[cells["cell"] == "A/ft"].iloc[0]
    assert (a["n"], a["non_finite"], a["trials"]) == (N - 2, 2, N)
    assert f"(n = {N - 2}; 2 non-finite)" in md and f"(n = {N - 2}; 2 non-finite)" in report["tex"]
    assert f"(n = {N - 2})</span>" in report["html"]
    assert "A/ft: 2 finished trial(s) have no finite accuracy" in md
    row = _row(report["contrasts"], "A/ft", "B/ft", "nan")
    assert (row["n_a"], row["n_b"]) == (N - 2, N)
    finite = [v for v in report["values"]["A/ft"] if np.isfinite(v)]
    ref = stats.ttest_ind(finite, report["values"]["B/ft"], equal_var=False)
    assert row["p"] == pytest.approx(ref.pvalue, rel=1e-9)


def test_degenerate_contrast_is_named_in_every_format(report) -> None:
    row = _row(report["contrasts"], "C/ft", "D/ft", "constant")
    assert row["verdict"] == "degenerate" and row["delta"] == 0.0
    assert all(np.isnan(row[k]) for k in ("t", "p", "ci_low", "mde_80", "tost_p"))
    md = report["md"]
    line = next(x for x in md.splitlines() if x.startswith("| C/ft | D/ft |"))
    assert "degenerate" in line and "≈" not in line and "0.00e+00" not in line
    assert "∞" not in line and "0.0000 |" not in line.split("|")[-3]
    assert "**Contrasts that cannot be tested**" in md and "both arms are constant" in md
    assert "degenerate" in report["html"] and "degenerate" in report["tex"]


def test_holm_counts_every_declared_contrast(report) -> None:
    df = report["contrasts"]
    fam = df[df["family"] == "holm"]
    assert len(fam) == 6 and fam["p"].isna().sum() == 3
    assert (fam[fam["p"].isna()]["verdict"] == "not testable").all()
    assert "too few values to test: A has 1 finite value(s)" in report["md"]
    from statsmodels.stats.multitest import multipletests

    ref = multipletests(fam["p"].fillna(1.0).to_numpy(), method="holm")[1]
    ok = fam["p"].notna().to_numpy()
    assert fam["p_holm"].to_numpy()[ok] == pytest.approx(ref[ok], rel=1e-12)
    assert fam["mde_alpha"].tolist() == pytest.approx([0.05 / 6] * 6)


def test_opposite_direction_is_flagged_in_every_format(report) -> None:
    row = _row(report["contrasts"], "G/ft", "F/ft", "opposite")
    assert row["verdict"] == "inconclusive" and bool(row["opposite"])
    assert row["delta"] < 0 and row["t"] < -10
    md = report["md"]
    line = next(x for x in md.splitlines() if x.startswith("| G/ft | F/ft |"))
    assert "⚠ opposite" in line and "**Against the declared direction**" in md
    assert "against the declared direction: F/ft over G/ft" in md
    assert "⚠ opposite" in report["html"] and "(opposite)" in report["tex"]


def test_partial_order_one_edge_per_pair_and_no_implied_edges(report) -> None:
    md = report["md"]
    order = md[md.index("**accuracy, ft**"):].split("\n\n")[0]
    better = order.split("better: ")[1].split(";\n")[0]
    assert better.count("F/ft ≻ G/ft") == 1  # tested in two families: one relation
    assert "G/ft ≻ H/ft" in better
    assert "not implied although a path suggests it: F/ft vs H/ft" in order
    assert "not closed under" in md


def test_no_margin_means_no_equivalence(report) -> None:
    row = _row(report["contrasts"], "I/ft", "J/ft", "plain")
    assert row["p"] > 0.05 and row["verdict"] == "inconclusive"
    assert np.isnan(row["margin"]) and np.isnan(row["tost_p"])
    line = next(x for x in report["md"].splitlines() if x.startswith("| I/ft | J/ft |"))
    assert "| – | – |" in line  # margin and TOST columns empty
    assert "within the declared margins: ±0.01 on accuracy" in report["md"]
    assert "Contrasts without a declared margin were not tested for equivalence" in report["md"]


def test_published_numbers_get_a_replication_verdict(report) -> None:
    md = report["md"]
    assert "## Published vs measured" in md
    b = next(x for x in md.splitlines() if x.startswith("| B/ft | accuracy |"))
    assert "a paper, Table 1" in b and "inconclusive" in b
    c = next(x for x in md.splitlines() if x.startswith("| C/ft | accuracy |"))
    assert "not testable" in c
    rep = pd.read_csv(report["rep"] / "replication.csv")
    assert set(rep["verdict"]) == {"inconclusive", "not testable"}


@pytest.mark.skipif(__import__("shutil").which("pdflatex") is None,
                    reason="pdflatex is not installed")
def test_edge_case_report_compiles(report, tmp_path) -> None:
    import subprocess

    for name in ("report.tex", "tables.tex"):
        (tmp_path / name).write_text((report["rep"] / name).read_text())
    out = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error",
                          "report.tex"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout[-2000:]
