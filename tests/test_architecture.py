"""The structure docs/architecture.md describes: layers read from its table, no import circle, no
module over 400 lines; every built-in method runs as a stage; each of the four recipes (a
protocol kind, a method, a dataset format, an executor) works with a throwaway defined here."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import pytest
import torch
from conftest import suite_plan, suite_tracker
from pydantic import Field
from torch import Tensor, nn

from bench.cli import main
from bench.track import FINISHED

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 400


# ---------------------------------------------------------------- the import structure
def _layers() -> dict[str, int]:
    """Box → layer, from the table of docs/architecture.md."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    out: dict[str, int] = {}
    for layer, boxes in re.findall(r"^\| (\d) \| ([^|]+) \|$", text, flags=re.M):
        for box in boxes.replace("\\_", "_").split(","):
            out[f"bench.{box.strip()}"] = int(layer)
    return out


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((ROOT / "bench").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """bench modules ``name`` imports (anywhere in the file, lazily too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        for t in targets:
            while t and t not in modules:
                t = t.rpartition(".")[0]
            if t and t != name and t != "bench":
                found.add(t)
    return found


def _layer_of(module: str, layers: dict[str, int]) -> int | None:
    best = [b for b in layers if module == b or module.startswith(b + ".")]
    return layers[max(best, key=len)] if best else None


def test_layers_table_covers_every_box() -> None:
    layers = _layers()
    assert layers["bench.cli"] == 8 and layers["bench.stats"] == 0, layers
    missing = [m for m in _modules() if m != "bench" and _layer_of(m, layers) is None]
    assert not missing, f"modules in no layer of docs/architecture.md: {missing}"


def test_imports_follow_the_layers_without_circles() -> None:
    layers, modules = _layers(), _modules()
    graph = {m: _imports(m, p, modules) for m, p in modules.items()}
    backward = [f"{m} -> {t}" for m, ts in graph.items() for t in ts
                if (_layer_of(m, layers) or 0) < (_layer_of(t, layers) or 0)]
    assert not backward, f"imports against the flow: {backward}"
    # a circle: a module that reaches itself
    circles = []
    for start in graph:
        seen, todo = set(), list(graph[start])
        while todo:
            m = todo.pop()
            if m == start:
                circles.append(start)
                break
            if m not in seen:
                seen.add(m)
                todo.extend(graph.get(m, ()))
    assert not circles, f"modules on an import circle: {sorted(circles)}"
    assert not [m for m in graph["bench.stats"] | {t for m, ts in graph.items()
                if m.startswith("bench.stats.") for t in ts} if not m.startswith("bench.stats")]


def test_no_module_is_over_400_lines() -> None:
    big = {str(p.relative_to(ROOT)): n for p in (ROOT / "bench").rglob("*.py")
           if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, big


def test_the_scheduler_and_the_suite_language_import_no_torch() -> None:
    code = ("import sys; import bench.execute.scheduler, bench.execute.request; "
            "from bench.plan import load_suite; load_suite('suites/demo.yaml'); "
            "print(sorted(m for m in ('torch', 'kornia', 'mlflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_training_imports_no_test_statistics() -> None:
    """A worker that only trains (its trial metrics, calibration included) does not import
    scipy.stats (bench.stats loads its modules on first use); the analysis still finds them."""
    code = ("import sys; import bench.train.trial, bench.execute.runners; "
            "print('scipy.stats' in sys.modules); "
            "from bench.stats import holm, welch; print(callable(welch), holm([0.01, 0.04]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.split("\n")
    assert out[:2] == ["False", "True [0.02, 0.04]"], out


# ---------------------------------------------------------------- every method as a stage
METHODS_SUITE = """\
name: methods
output: {output}
threads: 1
datasets:
  d:
    format: synthetic
    synthetic: {{n_classes: 3, n_images: 48, image_size: 16, seed: 2}}
    split: {{seed: 0, fractions: {{train: 0.5, test: 0.5}}}}
inits:
  rnd: {{arch: tiny_resnet_w8, weights: random, seed: 0}}
stages:
{stages}
protocols:
  lp:
    kind: linear_probe
    train: d:train
    test: d:test
    epochs: 1
    batch_size: 8
    image_size: 16
    lr_search: {{method: fixed, lr: 0.01}}
    tta: {{mode: clean}}
grid:
  inits: [rnd]
  chains: [{chains}]
  protocols: [lp]
seeds: {{count: 1}}
"""
SMALL = {"barlow_twins": "{projector: {dims: [16, 16]}}", "vicreg": "{projector: {dims: [16, 16]}}",
         "simclr": "{projector: {dims: [16, 16]}}",
         "byol": "{projector: {dims: [16, 8]}, predictor: {dims: [16, 8]}}", "supervised": "{}"}


def _stage(name: str, method: str, params: str) -> str:
    return (f"  {name}: {{method: '{method}', data: [d:train], epochs: 1, batch_size: 8, "
            f"image_size: 16, warmup_epochs: 1, unfreeze: last_block, params: {params}}}\n")


def test_every_builtin_method_runs_as_a_stage_by_name_and_as_module_class(tmp_path: Path) -> None:
    from bench.ssl.methods import METHODS

    assert set(SMALL) == set(METHODS), "a built-in method without a stage test"
    stages, chains = "", []
    for name, entry in METHODS.items():
        stages += _stage(name, name, SMALL[name]) + _stage(f"{name}_cls", entry.target,
                                                           SMALL[name])
        chains += [f"[{name}]", f"[{name}_cls]"]
    suite = tmp_path / "methods.yaml"
    suite.write_text(METHODS_SUITE.format(output=tmp_path / "out", stages=stages.rstrip("\n"),
                                          chains=", ".join(chains)))
    assert main(["run", str(suite), "--quiet"]) == 0
    plan = suite_plan(suite)
    status = suite_tracker(suite, name="methods").status_by_key()
    assert all(status[s.key].status == FINISHED for s in plan.stages)
    assert all(status[t.key].status == FINISHED for t in plan.trials)
    enc = {s.name: torch.load(tmp_path / "out" / "encoders" / f"{s.key}.pt", weights_only=True)
           for s in plan.stages}
    init = plan.inits["rnd"].key
    from bench.execute.artifacts import Artifacts

    start = Artifacts(plan, suite_tracker(suite, name="methods"), tmp_path / "out").encoder(init)
    for name in METHODS:
        by_name, by_class = enc[name], enc[f"{name}_cls"]
        # named by its class path, a method trains exactly as by its registered name
        assert all(torch.equal(by_name[k], by_class[k]) for k in by_name), name
        # … and it trained: the last block moved
        moved = [k for k in by_name if "layer4" in k and "weight" in k
                 and not torch.equal(by_name[k], start.state_dict()[k])]
        assert moved, f"{name}: the unfrozen block did not change"


def test_byol_target_copies_the_input_normalisation() -> None:
    from bench.models.heads import Normalize, NormalizedEncoder
    from bench.models.registry import seeded_backbone
    from bench.ssl.methods import resolve_method
    from bench.ssl.methods.params import BYOLParams

    encoder = NormalizedEncoder(seeded_backbone("tiny_resnet_w8", 0), Normalize(True))
    params = BYOLParams.model_validate({"projector": {"dims": [16, 8]},
                                        "predictor": {"dims": [16, 8]}})
    byol = resolve_method("byol")(encoder.feature_dim, params)
    byol.bind(encoder, 10)
    x = torch.rand(4, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(byol.target_encoder(x), encoder(x))  # same input pipeline
    loss = byol.loss(encoder, [x, x.flip(-1)], None)
    assert loss.ndim == 0 and torch.isfinite(loss)


# ---------------------------------------------------------------- recipe: a protocol kind
def _only(protocol: str, chains: str = "[[sup]]") -> list[str]:
    """``--set`` arguments that shrink the tiny suite's grid to one protocol."""
    return ["--set", f"grid.protocols=[{protocol}]", "--set", f"grid.chains={chains}",
            "--set", "contrasts=[]"]


def _centroid_kinds():
    from bench.config.protocols import ProtocolBase
    from bench.protocols.base import Protocol
    from bench.train.evaluate import TrialResult
    from bench.train.metrics import compute_metrics

    class CentroidRunner(Protocol):
        def run(self, backbone, spec, train, test, classes, seeds, device, max_lr,
                on_epoch=None):
            backbone.eval()
            with torch.no_grad():
                f_train = nn.functional.normalize(backbone(train.images.float() / 255), dim=1)
                f_test = nn.functional.normalize(backbone(test.images.float() / 255), dim=1)
            centroids = torch.stack([f_train[train.labels == c].mean(0)
                                     for c in range(len(classes))])
            probs = torch.softmax(f_test @ centroids.T / spec.temperature, 1).numpy()
            labels = test.labels.numpy()
            return [TrialResult(metrics=compute_metrics(probs, labels, classes),
                                probs=probs.astype(np.float32), labels=labels, max_lr=0.0)
                    for _ in seeds]

    class Centroid(ProtocolBase):
        """Nearest class centroid of the frozen encoder's features (cosine)."""

        kind: Literal["centroid"] = Field(description="`centroid`.")
        temperature: float = Field(0.1, gt=0, description="Softmax temperature.")
        runner: ClassVar[str | type] = CentroidRunner

    return Centroid


def test_recipe_a_throwaway_protocol_kind_runs(tiny_suite: Path, monkeypatch) -> None:
    from bench.config import protocols as config_protocols
    from bench.config.schema import register_protocol

    spec = _centroid_kinds()
    before = dict(config_protocols.PROTOCOL_KINDS)
    register_protocol(spec)
    try:
        text = tiny_suite.read_text().replace("  lp:\n", "  nc:\n    kind: centroid\n"
                                              "    train: tgt:train\n    test: tgt:test\n"
                                              "    epochs: 1\n    image_size: 16\n    batch_size: 12\n"
                                              "    temperature: 0.5\n  lp:\n")
        tiny_suite.write_text(text)
        assert main(["run", str(tiny_suite), "--quiet", *_only("nc")]) == 0
        plan = suite_plan(tiny_suite, *_only("nc")[1::2])
        assert plan.cells[0].spec.temperature == 0.5
        status = suite_tracker(tiny_suite).status_by_key()
        assert all(status[t.key].status == FINISHED for t in plan.trials)
        runs = {r.key: r for r in suite_tracker(tiny_suite).runs("trial")}
        assert 0 <= runs[plan.trials[0].key].metrics["test_accuracy"] <= 1
    finally:
        config_protocols.PROTOCOL_KINDS.clear()
        config_protocols.PROTOCOL_KINDS.update(before)
        from bench.config.schema import Suite

        Suite.model_fields["protocols"].annotation = dict[str, config_protocols.protocol_union()]
        Suite.model_rebuild(force=True)


# ---------------------------------------------------------------- recipe: a method
def _toy_method():
    """A throwaway method: pull the two views' normalised features together, keep their batch
    mean near zero (enough to train)."""
    from bench.ssl.methods.base import Method
    from bench.ssl.methods.params import MethodParams

    class ToyParams(MethodParams):
        weight: float = Field(1.0, gt=0)

    class Toy(Method):
        Params: ClassVar[type[MethodParams]] = ToyParams

        def loss(self, encoder: nn.Module, views: list[Tensor], labels: Tensor | None) -> Tensor:
            z1, z2 = (nn.functional.normalize(encoder(v), dim=1) for v in views[:2])
            return -(z1 * z2).sum(1).mean() * self.params.weight + z1.mean(0).pow(2).sum()

    return Toy, ToyParams


Toy, ToyParams = _toy_method()


def test_recipe_a_throwaway_method_is_one_registry_line(tiny_suite: Path, monkeypatch) -> None:
    from bench.ssl.methods import METHODS, MethodEntry

    monkeypatch.setitem(METHODS, "toy", MethodEntry(f"{__name__}:Toy", ToyParams))
    tiny_suite.write_text(tiny_suite.read_text().replace("method: barlow_twins", "method: toy")
                          .replace("params: {projector: {dims: [32, 32]}, sparse_head: 0.01}",
                                   "params: {weight: 2.0}"))
    args = [*_only("lp", chains="[[sup, bt]]"), "--set", "stages.bt.warmup_epochs=0"]
    assert main(["run", str(tiny_suite), "--quiet", *args]) == 0  # (no head to warm up)
    plan = suite_plan(tiny_suite, *args[1::2])
    toy = next(s for s in plan.stages if s.name == "bt")
    assert toy.spec.method == "toy"
    assert suite_tracker(tiny_suite).status_by_key()[toy.key].status == FINISHED
    with pytest.raises(Exception, match="unknown parameter 'weigth'"):
        suite_plan(tiny_suite, "stages.bt.params.weigth=1", "contrasts=[]")


# ---------------------------------------------------------------- recipe: a dataset format
def _read_tsv(spec, where: str):
    import pandas as pd

    table = pd.read_csv(spec.labels, sep="\t")
    table.attrs["root"] = spec.root
    return table.assign(id=table["file"], rel=table["file"], group=table["file"])


def test_recipe_a_throwaway_dataset_format_is_one_registry_line(tiny_suite: Path,
                                                                 monkeypatch) -> None:
    from bench.config.schema import SyntheticSpec
    from bench.data.readers import READERS, Reader
    from bench.data.synthetic import write_folder

    monkeypatch.setitem(READERS, "tsv", Reader(_read_tsv, needs_labels=True))
    folder = tiny_suite.parent / "tsvdata"
    csv = write_folder(SyntheticSpec(n_classes=3, n_images=60, image_size=16, seed=4), folder)
    rows = [line.split(",") for line in csv.read_text().splitlines()[1:]]
    (folder / "labels.tsv").write_text("file\tlabel\n" + "".join(
        f"{Path(p).relative_to('images') if p.startswith('images') else p}\t{lab}\n"
        for p, lab, _ in rows))
    text = tiny_suite.read_text().replace(
        "    format: synthetic\n    synthetic: {n_classes: 3, n_images: 72, image_size: 16, "
        "imbalance: 0.5, seed: 5}\n",
        f"    format: tsv\n    root: {folder / 'images'}\n    labels: {folder / 'labels.tsv'}\n")
    tiny_suite.write_text(text)
    plan = suite_plan(tiny_suite)
    assert plan.datasets["tgt"].spec.format == "tsv" and len(plan.datasets["tgt"].records) == 60
    assert main(["run", str(tiny_suite), "--quiet", *_only("lp")]) == 0
    # what the format needs is checked when the suite loads
    with pytest.raises(Exception, match="format 'tsv' needs 'labels'"):
        suite_plan(tiny_suite, "datasets.tgt.labels=null", "contrasts=[]")


# ---------------------------------------------------------------- recipe: an executor
def test_recipe_a_throwaway_executor_gets_the_request(tiny_suite: Path, monkeypatch) -> None:
    from bench.execute import EXECUTORS, Executor
    from bench.execute.local import LocalExecutor

    seen = []

    class FirstCellOnly(Executor):
        """Runs only the first cell's trials (and the stages they need)."""

        def run(self, request, progress) -> int:
            seen.append(request)
            plan, tracker = request.open()
            worker = LocalExecutor(plan, tracker, request.output, progress)
            worker.only = {t.key for t in plan.trials_of(plan.cells[0])} | {
                s.key for s in plan.stages}
            return 0 if worker.run().ok else 1

    monkeypatch.setitem(EXECUTORS, "first", FirstCellOnly)
    assert main(["run", str(tiny_suite), "--quiet", "--executor", "first"]) == 0
    (request,) = seen
    assert request.suite == tiny_suite.resolve() and request.output.name == "out"
    import pickle

    assert pickle.loads(pickle.dumps(request)) == request  # what a remote worker receives
    plan = suite_plan(tiny_suite)
    status = suite_tracker(tiny_suite).status_by_key()
    done = {t.key for t in plan.trials if t.key in status and status[t.key].status == FINISHED}
    assert done == {t.key for t in plan.trials_of(plan.cells[0])}
