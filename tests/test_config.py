"""Suite loading: every bad suite gets one clear message with file:line:col and field path."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cli import main
from bench.config.errors import SuiteError
from bench.plan import load_suite

MIN = """\
name: t
datasets:
  d:
    format: synthetic
    split: {fractions: {train: 0.5, test: 0.5}}
inits:
  r: {arch: tiny_resnet_w8}
protocols:
  linear_probe:
    kind: linear_probe
    train: d:train
    test: d:test
    epochs: 1
grid:
  inits: [r]
  protocols: [linear_probe]
"""

STAGE = """\
stages:
  s:
    method: barlow_twins
    data: [d:train]
    epochs: 1
"""


def _error(path: Path, overrides: tuple[str, ...] = (), env: dict | None = None) -> str:
    with pytest.raises(SuiteError) as info:
        load_suite(path, overrides, env=env or {})
    return str(info.value)


def test_minimal_suite_loads(write_suite) -> None:
    loaded = load_suite(write_suite(MIN), env={})
    assert loaded.suite.protocols["linear_probe"].n_warmup == 0
    assert loaded.suite.seeds.count == 10


# (replace this, with that, expected line of the error message (without the file name))
BAD = [
    ("protocols: [linear_probe]", "protocols: [r2, linear_prob]",
     ":16:15 grid.protocols[0]: unknown protocol 'r2'"),
    ("protocols: [linear_probe]", "protocols: [linear_probe, linear_prob]",
     ":16:29 grid.protocols[1]: unknown protocol 'linear_prob' (did you mean 'linear_probe'?)"),
    ("    epochs: 1\n", "    epoch: 1\n",
     ":13:5 protocols.linear_probe.epoch: unknown field 'epoch' (did you mean 'epochs'?)"),
    ("kind: linear_probe", "kind: linear_prob",
     ":10:5 protocols.linear_probe.kind: 'linear_prob' is not one of 'fine_tune', "
     "'linear_probe' or 'knn' (did you mean 'linear_probe'?)"),
    ("test: d:test", "test: d:tset",
     ":12:5 protocols.linear_probe.test: dataset 'd' has no part 'tset' (did you mean 'test'?)"),
    ("test: d:test", "test: e:test", ":12:5 protocols.linear_probe.test: unknown dataset 'e'"),
    ("test: d:test", "test: d:train",
     ":12:5 protocols.linear_probe.test: the test part 'd:train' is also the training part"),
    ("{train: 0.5, test: 0.5}", "{train: 0.5, test: 0.4}",
     ":5:5 datasets.d.split: fractions sum to 0.9, not 1"),
    ("{arch: tiny_resnet_w8}", "{arch: resnet5}",
     ":7:7 inits.r.arch: unknown architecture 'resnet5' (did you mean 'resnet50'?)"),
    ("{arch: tiny_resnet_w8}", "{arch: tiny_resnet_w8, weights: 'http://x/y.pth'}",
     ":7:29 inits.r.weights: weights must be 'random', 'file:PATH' or 'torchvision:"),
    ("    epochs: 1\n", "    epochs: 0\n",
     ":13:5 protocols.linear_probe.epochs: Input should be greater than or equal to 1 (got 0)"),
    ("name: t\n", "",
     ":1:1 name: required field 'name' is missing"),
    ("name: t\n", "name: t\nseeds: {count: 3, vary: [head, order, augmnt]}\n",
     ":2:39 seeds.vary[2]: 'augmnt' is not one of"),
    ("inits: [r]", "inits: [r]\n  exclude: ['*']", ":14:1 grid: the grid expands to no cell"),
    ("name: t\n", "name: t\ndevice: gpu\n", ":2:1 device: 'gpu' is not one of 'auto', 'cpu' or 'cuda'"),
    ("name: t\n", "name: t\nreport: {metrics: [acuracy]}\n",
     ":2:20 report.metrics[0]: unknown metric 'acuracy' (did you mean 'accuracy'?)"),
    ("name: t\n", "name: t\ncontrasts:\n  - {a: r/linear_probe, b: r/linear_prob}\n",
     ":3:25 contrasts[0].b: unknown cell 'r/linear_prob' (did you mean 'r/linear_probe'?)"),
    ("name: t\n", "name: t\noutput: ${OUT_DIR}\n",
     ":2:1 output: environment variable 'OUT_DIR' is not set (set it, or write ${OUT_DIR:-default})"),
    ("name: t\n", "name: t\nname: u\n", ':2:1: YAML syntax error: found duplicate key "name"'),
    ("  d:\n    format", "  d:\n    format: [\n    x", "YAML syntax error"),
]


@pytest.mark.parametrize(("old", "new", "expected"), BAD, ids=[b[2][:40] for b in BAD])
def test_bad_suite_message(write_suite, old: str, new: str, expected: str) -> None:
    assert old in MIN
    path = write_suite(MIN.replace(old, new, 1))
    message = _error(path)
    assert expected in message, message
    if expected.startswith(":"):
        assert f"{path}{expected}" in message


STAGE_BAD = [
    ("method: barlow_twins", "method: barlow_twin",
     "stages.s.method: unknown method 'barlow_twin' (did you mean 'barlow_twins'?)"),
    ("epochs: 1\n", "epochs: 1\n    params: {lambda: 0.1}\n",
     "stages.s.params.lambda: unknown parameter 'lambda' of method 'barlow_twins'"),
    ("data: [d:train]", "data: [d:trian]", "stages.s.data[0]: dataset 'd' has no part 'trian'"),
    ("method: barlow_twins", "method: nowhere.module:Thing",
     "stages.s.method: cannot import 'nowhere.module'"),
]


@pytest.mark.parametrize(("old", "new", "expected"), STAGE_BAD, ids=[b[2][:30] for b in STAGE_BAD])
def test_bad_stage_message(write_suite, old: str, new: str, expected: str) -> None:
    text = MIN + STAGE.replace(old, new, 1)
    message = _error(write_suite(text))
    assert expected in message, message


def test_grid_unknown_stage_line(write_suite) -> None:
    text = MIN.replace("  inits: [r]\n", "  inits: [r]\n  chains: [[], [s, t]]\n") + STAGE
    message = _error(write_suite(text))
    assert ":16:20 grid.chains[1][1]: unknown stage 't'" in message, message


def test_every_problem_is_listed(write_suite) -> None:
    text = MIN.replace("kind: linear_probe", "kind: linear_prob").replace(
        "{arch: tiny_resnet_w8}", "{arch: tiny_resnet_w8, colour: red}")
    message = _error(write_suite(text))
    assert "unknown field 'colour'" in message
    assert "'linear_prob' is not one of" in message
    assert len(message.splitlines()) == 2


def test_interpolation_with_default_and_env(write_suite) -> None:
    text = MIN.replace("    epochs: 1\n", "    epochs: ${EPOCHS:-3}\n")
    path = write_suite(text)
    assert load_suite(path, env={}).suite.protocols["linear_probe"].epochs == 3
    assert load_suite(path, env={"EPOCHS": "5"}).suite.protocols["linear_probe"].epochs == 5


def test_overrides_apply_and_errors_point_at_them(write_suite) -> None:
    path = write_suite(MIN)
    loaded = load_suite(path, ["seeds.count=3", "protocols.linear_probe.batch_size=8"], env={})
    assert loaded.suite.seeds.count == 3
    assert loaded.suite.protocols["linear_probe"].batch_size == 8
    message = _error(path, ("seeds.count=0",))
    assert "--set seeds.count=0 seeds.count: Input should be greater than or equal to 1" in message
    message = _error(path, ("grid.protocols[0]=linear_prob",))
    assert "--set grid.protocols[0]=linear_prob grid.protocols[0]: unknown protocol" in message
    with pytest.raises(SuiteError, match=r"not key\.path=value"):
        load_suite(path, ["seeds.count"], env={})


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="cannot read suite"):
        load_suite(tmp_path / "nope.yaml", env={})


def test_cli_exits_2_with_the_message(write_suite, capsys) -> None:
    path = write_suite(MIN.replace("protocols: [linear_probe]", "protocols: [linear_prob]"))
    assert main(["plan", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:16:15 grid.protocols[0]: unknown protocol 'linear_prob'" in err


def test_shipped_suites_are_valid() -> None:
    root = Path(__file__).resolve().parent.parent / "suites"
    for path in sorted(root.glob("*.yaml")):
        load_suite(path, env={})
