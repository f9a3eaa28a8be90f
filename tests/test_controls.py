"""Controls: contrasts with a known answer are judged in every report, and a broken pipeline
makes them fail."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.analysis.controls import control_rows, controls_line
from bench.analysis.verdicts import (
    BETTER,
    DEGENERATE,
    EQUIVALENT,
    INCONCLUSIVE,
    UNTESTABLE,
    WORSE,
)
from bench.cli import main
from bench.config.schema import ControlSpec

SUITE = Path(__file__).resolve().parents[1] / "suites" / "controls.yaml"
# the shipped controls with fewer seeds and epochs (the planted effect stays large), on one
# thread (test processes share the cores)
SMALL = ["seeds.count=3", "protocols.lp.epochs=3", "stages.SL.epochs=3", "threads=1"]


@pytest.mark.parametrize(("expect", "passes"), [
    ("a_better", {BETTER}), ("b_better", {WORSE}), ("equivalent", {EQUIVALENT}),
    ("no_difference", {EQUIVALENT, INCONCLUSIVE})])
def test_each_expectation_passes_exactly_its_verdicts(expect: str, passes: set[str]) -> None:
    verdicts = [BETTER, WORSE, EQUIVALENT, INCONCLUSIVE, DEGENERATE, UNTESTABLE]
    rows = [SimpleNamespace(label=f"c-{v}", metric="accuracy", verdict=v)  # a ContrastRow's
            for v in verdicts]                                              # fields it reads
    controls = [ControlSpec(contrast=f"c-{v}", expect=expect) for v in verdicts]
    judged = control_rows(controls, rows)
    assert {r.got for r in judged if r.passed} == passes
    missing = control_rows([ControlSpec(contrast="absent", expect=expect)], rows)
    assert [r.got for r in missing] == ["not testable"] and not missing[0].passed
    line = controls_line(judged)
    assert line.startswith(f"Controls: FAILED {len(verdicts) - len(passes)} of {len(verdicts)}")
    assert controls_line([r for r in judged if r.passed]) == f"Controls: all {len(passes)} passed"


def test_a_control_must_name_a_declared_contrast(tmp_path: Path) -> None:
    from bench.errors import BenchError
    from bench.plan import load_suite

    with pytest.raises(BenchError, match=r"controls\[0\]\.contrast 'nope' names no declared"):
        load_suite(SUITE, ["controls=[{contrast: nope, expect: a_better}]"], env={})


def _run_and_report(out: Path, capsys) -> str:
    args = [a for o in SMALL for a in ("--set", o)]
    assert main(["run", str(SUITE), "--quiet", "--output", str(out), *args]) == 0
    capsys.readouterr()
    assert main(["report", str(SUITE), "--output", str(out), *args, "--format", "markdown",
                 "--format", "html", "--format", "latex", "--out", str(out / "report")]) == 0
    captured = capsys.readouterr()
    line = next(ln for ln in (captured.out + captured.err).splitlines()
                if ln.startswith("Controls:"))
    md, html, tex = ((out / "report" / f"report.{ext}").read_text() for ext in ("md", "html",
                                                                             "tex"))
    assert md.index(f"**{line}**") < md.index("## Results")  # the report's first statement
    assert html.index(f"<strong>{line}</strong>") < html.index("<h2>Results")
    assert tex.index(r"\paragraph{Controls: ") < tex.index(r"\input{tables}")
    return line


@pytest.mark.slow
def test_the_controls_pass_and_a_broken_pipeline_fails_them(tmp_path: Path, capsys,
                                                            monkeypatch) -> None:
    import shutil

    from bench.track import Tracker, default_tracking_uri

    good, broken = tmp_path / "good", tmp_path / "broken"
    assert _run_and_report(good, capsys) == "Controls: all 3 passed"
    shutil.copytree(good, broken)  # the same pre-trained stages; the trials are run again
    tracker = Tracker(default_tracking_uri(broken), "controls", broken / "artifacts")
    for run in tracker.runs():
        if run.kind != "stage":
            tracker.delete_run(run.run_id)
    from bench.execute.artifacts import Artifacts

    encoder = Artifacts.encoder

    def wrong_encoder(self, key):  # a bug: every cell evaluates its root initialisation
        stage = next((s for s in self.plan.stages if s.key == key), None)
        return encoder(self, self.plan.inits[stage.init].key if stage else key)

    monkeypatch.setattr(Artifacts, "encoder", wrong_encoder)
    line = _run_and_report(broken, capsys)
    assert line.startswith("Controls: FAILED 2 of 3: ")
    assert "planted (accuracy): expected A ≻ B, got inconclusive" in line
    # every replicate now evaluates the same initialisation: no variance left to test
    assert "A/A pre-trained (accuracy): expected no difference (≈ or inconclusive), got " \
        "degenerate" in line


def test_the_shipped_controls_are_what_they_claim() -> None:
    """Read from suites/controls.yaml: the A/A arms differ only in their seeds, and the planted
    effect's source is labelled by the target's own factors (colour random in both)."""
    from bench.plan import load_suite

    suite = load_suite(SUITE, env={}).suite
    a, b = suite.inits["rnd_a"], suite.inits["rnd_b"]
    assert a.model_dump(exclude={"seed"}) == b.model_dump(exclude={"seed"}) and a.seed != b.seed
    src, tgt = (suite.datasets[n].synthetic for n in ("source", "target"))
    assert src.label_factors == tgt.label_factors and "colour" not in tgt.label_factors
    assert suite.stages["SL"].method == "supervised" and suite.stages["SL"].replicates >= 3
    by_label = {c.label: c for c in suite.contrasts}
    assert {c.contrast: c.expect for c in suite.controls} == {
        "A/A": "no_difference", "A/A pre-trained": "no_difference", "planted": "a_better"}
    assert by_label["A/A"].a == "rnd_a/lp" and by_label["A/A"].b == "rnd_b/lp"
    assert by_label["A/A pre-trained"].a == "rnd_a+SL/lp"
    assert by_label["A/A pre-trained"].b == "rnd_b+SL/lp"
