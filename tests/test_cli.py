"""The command line: light start-up, plan output, report on partial results."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bench.cli import main


def test_help_does_not_import_heavy_libraries() -> None:
    code = ("import sys; from bench.cli import build_parser; build_parser(); "
            "heavy = [m for m in ('torch', 'mlflow', 'pandas', 'sklearn') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    res = subprocess.run([sys.executable, "-m", "bench", "--help"], capture_output=True,
                         text=True, check=True)
    for word in ("run", "plan", "report"):
        assert word in res.stdout


def test_plan_of_the_paper_suite_does_not_import_torch(tmp_path: Path) -> None:
    """``bench plan`` validates methods, weights and architectures without torch (start-up)."""
    root = Path(__file__).resolve().parents[1]
    code = ("import sys; from bench.cli import main; "
            f"main(['plan', 'suites/isic2019star.yaml', '--output', {str(tmp_path)!r}, "
            "'--allow-missing']); "
            "print('HEAVY', [m for m in ('torch', 'torchvision', 'mlflow') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=root)
    assert "700 trial(s)" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "HEAVY []"


def test_torchvision_urls_match_torchvision() -> None:
    import torchvision.models as tvm

    from bench.models.files import TORCHVISION_URLS

    for name, url in TORCHVISION_URLS.items():
        enum, member = name.split(".")
        assert getattr(getattr(tvm, enum), member).url == url


def test_plan_before_anything_ran(tiny_suite: Path, capsys) -> None:
    assert main(["plan", str(tiny_suite)]) == 0
    out = capsys.readouterr().out
    assert "suite tiny: 2 stage(s), 4 cell(s), 8 trial(s)" in out
    assert "pending   rnd+sup " in out and "0/2   rnd+sup+bt/lp" in out
    assert not (tiny_suite.parent / "out" / "mlflow.db").exists()  # a plan writes nothing
    assert main(["plan", str(tiny_suite), "--trials"]) == 0
    out = capsys.readouterr().out
    assert out.count("pending   seed ") == 8


def test_report_without_results_says_what_to_do(tiny_suite: Path, capsys) -> None:
    assert main(["report", str(tiny_suite), "--out", str(tiny_suite.parent / "rep")]) == 2
    assert "does not exist. Run `bench run" in capsys.readouterr().err


def test_report_on_partial_results_warns(tiny_suite: Path, capsys, monkeypatch) -> None:
    scratch = tiny_suite.parent / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    assert main(["run", str(tiny_suite), "--set", "grid.protocols=[lp]",
                 "--set", "contrasts=[]"]) == 0
    assert list(scratch.glob("bench-*")) == []  # the run's scratch files went with it
    capsys.readouterr()
    rep = tiny_suite.parent / "rep"
    assert main(["report", str(tiny_suite), "--out", str(rep)]) == 0
    err = capsys.readouterr().err
    assert "warning: rnd+sup/ft: 0 of 2 trials finished" in err
    md = (rep / "report.md").read_text()
    assert "Partial results" in md and "| rnd+sup | 1 run | 0 | 0 |" in md
    # the CSVs: each trial with its MLflow run id, each contrast under its declared label
    import pandas as pd
    from conftest import suite_tracker

    labelled = "contrasts=[{a: rnd+sup+bt/lp, b: rnd+sup/lp, label: further pre-training}]"
    assert main(["report", str(tiny_suite), "--set", labelled, "--report-dir", str(rep),
                 "--format", "csv"]) == 0
    trials = pd.read_csv(rep / "trials.csv")
    runs = {r.key: r.run_id for r in suite_tracker(tiny_suite).runs("trial")}
    done = trials[trials["status"] == "FINISHED"]
    assert trials.columns[-1] == "run_id" and len(done) == 4
    assert list(done["run_id"]) == [runs[k] for k in done["trial_key"]]
    contrasts = pd.read_csv(rep / "contrasts.csv")
    assert contrasts.columns[0] == "label"
    assert set(contrasts["label"]) == {"further pre-training"}


def test_bad_weights_is_a_clean_error(tiny_suite: Path, capsys) -> None:
    bad = ["--set", "inits.rnd.weights=file:missing.pt"]
    assert main(["run", str(tiny_suite), *bad]) == 2
    assert "error: init 'rnd': weights file not found: missing.pt" in capsys.readouterr().err
    # a plan still shows the suite's shape, and lists what is missing (exit 2: run would refuse)
    assert main(["plan", str(tiny_suite), *bad]) == 2
    out = capsys.readouterr().out
    assert "missing inputs (1)" in out and "init 'rnd': weights file not found" in out
    assert "4 cell(s), 8 trial(s)" in out


def test_stats_welch_from_the_papers_summary_statistics(capsys) -> None:
    import json

    from scipy import stats

    assert main(["stats", "welch", "--a", "0.65701,0.02109,35", "--b", "0.69113,0.01117,35",
                 "--alternative", "less", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["p"] == pytest.approx(1.27e-11, rel=0.01) and "tost_p" not in out
    ref = stats.ttest_ind_from_stats(0.65701, 0.02109, 35, 0.69113, 0.01117, 35,
                                     equal_var=False, alternative="less")
    assert (out["t"], out["p"]) == (pytest.approx(ref.statistic, rel=1e-12),
                                    pytest.approx(ref.pvalue, rel=1e-9))
    assert out["df"] == pytest.approx(51.683, abs=1e-3) and out["ci_low"] == "-inf"
    assert main(["stats", "welch", "--a", "0.70065,0.01246,35", "--b", "0.69583,0.00925,35",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["p"] == pytest.approx(0.071, rel=0.01) and "tost_p" not in out
    assert main(["stats", "welch", "--a", "0.70065,0.01246,35", "--b", "0.69583,0.00925,35"]) == 0
    text = capsys.readouterr().out
    assert "p = 0.0709" in text and "no equivalence test" in text and "≈" not in text
    assert main(["stats", "welch", "--a", "0.70065,0.01246,35", "--b", "0.69583,0.00925,35",
                 "--margin", "0.01", "--json"]) == 0
    lo = stats.ttest_ind_from_stats(0.70065 + 0.01, 0.01246, 35, 0.69583, 0.00925, 35,
                                    equal_var=False, alternative="greater").pvalue
    hi = stats.ttest_ind_from_stats(0.70065 - 0.01, 0.01246, 35, 0.69583, 0.00925, 35,
                                    equal_var=False, alternative="less").pvalue
    assert json.loads(capsys.readouterr().out)["tost_p"] == pytest.approx(max(lo, hi), rel=1e-9)
    assert max(lo, hi) == pytest.approx(0.0263, abs=1e-4)
    assert main(["stats", "welch", "--a", "0.7,x,35", "--b", "0.69,0.01,35"]) == 2
    assert "give MEAN,SD,N" in capsys.readouterr().err
