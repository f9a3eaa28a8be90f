"""docs/new-ssl-method.md, executed: its example method file is real and its suite runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_simsiam_example_loss_and_learning() -> None:
    from bench.models.registry import seeded_backbone
    from bench.ssl.methods import resolve_method

    cls = resolve_method(str(ROOT / "examples" / "simsiam.py") + ":SimSiam")
    from bench.ssl.methods.base import Method

    assert issubclass(cls, Method)
    params = cls.Params.model_validate({"projector": {"dims": [32, 32]},
                                        "predictor": {"dims": [16, 32]}})
    torch.manual_seed(0)
    enc = seeded_backbone("tiny_resnet_w8", 0)
    m = cls(enc.feature_dim, params)
    x = torch.rand(16, 3, 16, 16)
    views = [x, (x + 0.05 * torch.randn_like(x)).clamp(0, 1)]
    # the formula: −½[cos(p1, z2) + cos(p2, z1)], stop-gradient on z
    z1, z2 = m.projector(enc(torch.cat(views))).chunk(2)
    p1, p2 = m.predictor(z1), m.predictor(z2)
    cos = torch.nn.functional.cosine_similarity
    expected = -0.5 * (cos(p1, z2).mean() + cos(p2, z1).mean())
    assert float(m.loss(enc, views, None).detach()) == pytest.approx(float(expected.detach()),
                                                                   rel=1e-5)
    opt = torch.optim.Adam([*enc.parameters(), *m.parameters()], lr=1e-3)
    losses = []
    for _ in range(20):
        loss = m.loss(enc, views, None)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]


@pytest.mark.slow
def test_guide_suite_runs(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(ROOT)  # the suite names the method file relative to the repository
    suite = "examples/new_method.yaml"
    out = ["--output", str(tmp_path / "runs"), "--set", "seeds.count=3",
           "--set", "threads=1"]  # one thread: test processes share the cores
    assert main(["run", suite, "--profile", "smoke", *out]) == 0
    assert "5 stage(s) trained" in capsys.readouterr().out  # base + 2 replicates of each method
    rep = tmp_path / "rep"
    assert main(["report", suite, "--profile", "smoke", *out, "--out", str(rep)]) == 0
    md = (rep / "report.md").read_text()
    line = next(x for x in md.splitlines()
                if x.startswith("| tiny+base+simsiam/linear_probe | tiny+base+bt/linear_probe |"))
    assert "| replicates | 2/2 |" in line and "(1 pre-training run)" not in line


def test_user_method_source_is_part_of_the_stage_key(tmp_path: Path, monkeypatch) -> None:
    from bench.plan import build_plan, load_suite

    method = tmp_path / "m.py"
    method.write_text((ROOT / "examples" / "simsiam.py").read_text())
    text = (ROOT / "examples" / "new_method.yaml").read_text().replace(
        "examples/simsiam.py:SimSiam", f"{method}:SimSiam")
    suite = tmp_path / "s.yaml"
    suite.write_text(text)
    before = {s.label: s.key for s in build_plan(load_suite(suite, env={})).stages}
    method.write_text(method.read_text() + "\n# an edit\n")
    import sys

    for name in [n for n in sys.modules if n.startswith("bench_user_method_")]:
        del sys.modules[name]
    after = {s.label: s.key for s in build_plan(load_suite(suite, env={})).stages}
    assert after["tiny+base+simsiam"] != before["tiny+base+simsiam"]
    assert after["tiny+base+bt"] == before["tiny+base+bt"]


def test_suite_reference_documents_every_field() -> None:
    from bench.config.reference import field_paths, reference_markdown

    doc = (ROOT / "docs" / "suite-reference.md").read_text()
    missing = [p for p, *_ in field_paths() if f"`{p}`" not in doc]
    assert not missing, f"undocumented fields (run python -m bench.config.reference): {missing}"
    assert doc == reference_markdown(), "docs/suite-reference.md is stale: regenerate it"


def test_guide_and_example_declare_the_same_replicates() -> None:
    from bench.plan import load_suite

    suite = load_suite(ROOT / "examples" / "new_method.yaml", env={}).suite
    guide = (ROOT / "docs" / "new-ssl-method.md").read_text()
    k = suite.stages["bt"].replicates
    assert k == suite.stages["simsiam"].replicates == 3  # the methods differ in nothing else
    assert f"`replicates: {k}`" in guide and guide.count(f"replicates: {k}") >= 3
