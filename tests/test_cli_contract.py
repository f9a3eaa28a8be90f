"""The command line's contract: one exit-code table (the README's, `bench --help`'s) honoured by
every command; messages about missing inputs that say which environment variable locates them
and where to get them; `bench report` / `status` without a suite; options never abbreviated."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli import main
from bench.errors import EXIT_CODES

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "suites" / "isic2019star.yaml"
PAPER_VARS = ("ISIC2019_IMAGES", "ISIC2019_GT", "ISIC2019_META", "PAD_UFES20_IMAGES",
              "PAD_UFES20_META", "DERMNET_ROOT", "BT_WEIGHTS", "VICREG_WEIGHTS",
              "VICREG200_WEIGHTS")


@pytest.fixture
def no_paper_data(monkeypatch, tmp_path: Path) -> list[str]:
    """The paper's suite with none of its data or weights on this machine."""
    for var in PAPER_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-torch-home"))
    return [str(PAPER), "--output", str(tmp_path / "paper")]


def test_the_readme_and_the_help_give_the_exit_code_table() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("Exit codes:"):].split("\n\n")[1]
    codes = [int(c) for c in re.findall(r"^\| (\d+) \|", table, flags=re.M)]
    assert codes == list(EXIT_CODES)
    out = subprocess.run([sys.executable, "-m", "bench", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "exit codes:" in out
    for code in EXIT_CODES:
        assert re.search(rf"^  {code} +\S", out, flags=re.M), code


def test_bare_bench_prints_the_help(capsys) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: bench") and "examples:" in out and "exit codes:" in out
    res = subprocess.run([sys.executable, "-m", "bench"], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.startswith("usage: bench")


@pytest.mark.parametrize("command", ["run", "plan", "status", "report", "verify", "data check",
                                     "init"])
def test_every_command_help_has_examples(command: str, capsys) -> None:
    assert main([*command.split(), "--help"]) == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"bench {command} " in out


def test_a_usage_error_is_exit_2_and_options_are_never_abbreviated(tiny_suite: Path,
                                                                   capsys) -> None:
    assert main(["run"]) == 2  # no suite
    assert "the following arguments are required: suite" in capsys.readouterr().err
    # `--out` is the report folder's old name, not a prefix of --output
    assert main(["run", str(tiny_suite), "--out", "elsewhere"]) == 2
    assert "unrecognized arguments: --out elsewhere" in capsys.readouterr().err
    assert main(["plan", str(tiny_suite), "--expl"]) == 2
    assert main(["report", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--report-dir DIR" in out and "--out " not in out


def test_missing_inputs_name_the_variable_that_locates_them(no_paper_data, capsys) -> None:
    assert main(["plan", *no_paper_data]) == 2
    captured = capsys.readouterr()
    assert "5 input(s) missing (listed above); `bench run` would refuse" in captured.err
    assert "set ISIC2019_IMAGES (datasets.isic.root), ISIC2019_GT (datasets.isic.labels), " \
           "ISIC2019_META (datasets.isic.metadata)" in captured.out
    assert "set BT_WEIGHTS (inits.SSL.weights)" in captured.out
    assert "get it: ISIC 2019 training data — https://challenge.isic-archive.com" in captured.out
    assert main(["plan", *no_paper_data, "--allow-missing"]) == 0
    capsys.readouterr()
    # bench run lists every missing input at once, with the same hints, and trains nothing
    assert main(["run", *no_paper_data]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 5 inputs cannot be read:")
    for text in ("set DERMNET_ROOT (datasets.dermnet.root)", "get it: PAD-UFES-20",
                 "init 'SSL': weights file not found", "set BT_WEIGHTS (inits.SSL.weights)",
                 "init 'SL': torchvision weights ResNet50_Weights.IMAGENET1K_V2 are not on this "
                 "machine", "or set TORCH_HOME"):
        assert text in err, text
    assert main(["data", "check", *no_paper_data]) == 2
    assert "ISIC2019_GT (datasets.isic.labels)" in capsys.readouterr().out
    # a --set replaces the field: the variable no longer locates it
    assert main(["plan", *no_paper_data, "--set", "datasets.isic.labels=gt.csv"]) == 2
    out = capsys.readouterr().out
    assert "set ISIC2019_IMAGES (datasets.isic.root), ISIC2019_META" in out
    assert "ISIC2019_GT" not in out


def test_status_and_report_say_when_there_is_no_store(tiny_suite: Path, capsys) -> None:
    for command in ("status", "report", "verify"):
        assert main([command, str(tiny_suite)]) == 2, command
        err = capsys.readouterr().err
        db = tiny_suite.parent / "out" / "mlflow.db"
        assert f"no results of suite 'tiny' in {db.parent}: {db} does not exist" in err
        assert "point --output" in err
    assert not (tiny_suite.parent / "out").exists()  # looking wrote nothing


def test_report_and_status_without_a_suite_use_the_last_run(tiny_suite: Path, tmp_path: Path,
                                                           monkeypatch, capsys) -> None:
    here = tmp_path / "work"
    here.mkdir()
    monkeypatch.chdir(here)
    assert main(["report"]) == 2
    assert "no suite given, and no run was started from this folder" in capsys.readouterr().err
    lp = ["--set", "grid.protocols=[lp]", "--set", "contrasts=[]", "--quiet"]
    assert main(["run", str(tiny_suite), *lp]) == 0
    capsys.readouterr()
    assert main(["report", "--format", "latex"]) == 0  # as typed after a run
    captured = capsys.readouterr()
    assert f"suite {tiny_suite} (the run in {tiny_suite.parent / 'out'})" in captured.err
    assert "wrote reports/tiny/report.tex" in captured.out
    assert (here / "reports" / "tiny" / "report.tex").is_file()
    assert main(["status"]) == 0  # the run's --set came back: only the lp cells
    out = capsys.readouterr().out
    assert "rnd+sup/lp" in out and "rnd+sup/ft" not in out
    # from another folder: nothing was run there
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.chdir(other)
    assert main(["report"]) == 2
    capsys.readouterr()
    assert main(["report", "--output", str(tiny_suite.parent / "out")]) == 0  # its run record
    # two stores under runs/, neither run from here: say which
    for name in ("a", "b"):
        (other / "runs" / name).mkdir(parents=True)
        (other / "runs" / name / "run.json").write_text(
            (tiny_suite.parent / "out" / "run.json").read_text())
    assert main(["status"]) == 2
    err = capsys.readouterr().err
    assert "2 runs are under runs/; say which:" in err and f"bench report {tiny_suite}" in err


def _image_folder(root: Path, classes: dict[str, int]) -> None:
    from PIL import Image

    for cls, n in classes.items():
        (root / cls).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (12, 12), (40 * i % 255, 90, 160)).save(root / cls / f"{i}.jpg")


def test_bench_init_writes_a_starter_suite_that_plans(tmp_path: Path, monkeypatch,
                                                      capsys) -> None:
    monkeypatch.chdir(tmp_path)
    _image_folder(tmp_path / "lesions", {"benign": 4, "malignant": 6})
    assert main(["init", "lesions"]) == 0
    suite = tmp_path / "suites" / "lesions.yaml"
    text = suite.read_text()
    assert "# (one sub-folder per class; 10 images, 2 classes: benign 4, malignant 6)" in text
    assert "root: ${LESIONS_DIR:-lesions}" in text and "bench never assumes one" in text
    capsys.readouterr()
    assert main(["plan", str(suite), "--allow-missing"]) == 0
    out = capsys.readouterr().out
    assert "target               10 images, 2 classes: test 5, train 5" in out
    assert "suite lesions: 2 stage(s), 8 cell(s), 80 trial(s)" in out
    assert "set BT_WEIGHTS (inits.SSL.weights)" in out  # the weights it names are missing
    assert main(["init", "lesions"]) == 2  # never overwrites without --force
    assert "exists; choose another with --suite, or --force" in capsys.readouterr().err
    # train/ and test/ as given (DermNet's layout) are kept as the parts
    _image_folder(tmp_path / "derm" / "train", {"a": 3, "b": 3, "c": 2})
    _image_folder(tmp_path / "derm" / "test", {"a": 1, "b": 2, "c": 1})
    assert main(["init", "derm", "--suite", "d.yaml", "--name", "derm2"]) == 0
    capsys.readouterr()
    assert main(["plan", "d.yaml", "--allow-missing"]) == 0
    assert "target               12 images, 3 classes: test 4, train 8" in capsys.readouterr().out
    # not a class folder: a clean error
    (tmp_path / "flat").mkdir()
    Path(tmp_path / "flat" / "x.jpg").write_bytes(b"")
    assert main(["init", "flat", "--suite", "f.yaml"]) == 2
    assert "found 0 class sub-folder(s) with images" in capsys.readouterr().err
