"""The new-method study of examples/ (docs/new-ssl-method.md, section 5): its two suites
match cell for cell, and the synthetic one runs end to end (smoke profile)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cli import main
from bench.config.names import cell_name, expand_cells
from bench.plan import load_suite

ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC, HAM = ROOT / "examples" / "study_synthetic.yaml", ROOT / "examples" / "study_ham10000.yaml"


def test_the_two_study_suites_differ_only_in_their_target_data() -> None:
    syn = load_suite(SYNTHETIC, env={}).suite
    ham = load_suite(HAM, env={"HAM10000_DIR": "/nowhere"}).suite
    names = [[cell_name(*c) for c in expand_cells(s)] for s in (syn, ham)]
    assert names[0] == names[1] and len(names[0]) == 18  # 3 encoders × 3 protocols × 2 fractions
    assert {p.kind for p in syn.protocols.values()} == {"knn", "linear_probe", "fine_tune"}
    assert {p.label_fraction for p in syn.protocols.values()} == {0.1, 1.0}
    for part in ("stages", "protocols", "grid", "seeds", "contrasts"):
        assert getattr(syn, part) == getattr(ham, part), part
    assert syn.stages["bt"].replicates == syn.stages["simsiam"].replicates == 3
    assert ham.datasets["target"].format == "ham10000" and ham.datasets["target"].split.grouped
    assert all(c.margin is None for c in syn.contrasts)  # no invented equivalence margin


@pytest.mark.slow
def test_the_synthetic_study_runs_and_reports(tmp_path: Path, capsys) -> None:
    # its kNN half, with the smoke profile (2 pre-training runs per method, 1 epoch, 2 seeds)
    out = ["--output", str(tmp_path / "runs"), "--profile", "smoke", "--set", "threads=1",
           "--set", "grid.protocols=[knn]", "--set", "contrasts=[{a: tiny+base+simsiam/knn, "
           "b: tiny+base+bt/knn, family: new}]"]
    assert main(["run", str(SYNTHETIC), *out, "-q"]) == 0
    assert "5 stage(s) trained, 0 already done; 20 trial(s) run" in capsys.readouterr().out
    rep = tmp_path / "rep"
    assert main(["report", str(SYNTHETIC), *out, "--report-dir", str(rep), "--format",
                 "markdown"]) == 0
    md = (rep / "report.md").read_text()
    assert "## Label efficiency" in md and "**knn, accuracy**" in md
    assert "| tiny+base+simsiam/knn@0.1 | tiny+base+bt/knn@0.1 | accuracy | new |" in md
