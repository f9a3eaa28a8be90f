"""Plugins without forking: a package installed with pip (into a temporary folder) adds a
method, a dataset format and a protocol kind through entry points, and a suite runs them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_SUITE, bench_process

PYPROJECT = """\
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "bench-toy-plugin"
version = "0.1"

[project.entry-points."bench.methods"]
toy = "toy_plugin.method:Toy"

[project.entry-points."bench.readers"]
flat = "toy_plugin.reader:READER"

[project.entry-points."bench.protocols"]
centroid = "toy_plugin.protocol:Centroid"
"""

FILES = {
    "__init__.py": "",
    "method.py": '''
        """Pull the two views' normalised features together; keep their mean near zero."""
        from typing import ClassVar

        from pydantic import Field
        from torch import Tensor, nn

        from bench.ssl.methods.base import Method
        from bench.ssl.methods.params import MethodParams


        class ToyParams(MethodParams):
            weight: float = Field(1.0, gt=0)


        class Toy(Method):
            Params: ClassVar[type[MethodParams]] = ToyParams

            def loss(self, encoder: nn.Module, views: list[Tensor], labels) -> Tensor:
                z1, z2 = (nn.functional.normalize(encoder(v), dim=1) for v in views[:2])
                return -(z1 * z2).sum(1).mean() * self.params.weight + z1.mean(0).pow(2).sum()
        ''',
    "reader.py": '''
        """Images named <label>__<id>.png in one folder (torch-free)."""
        from pathlib import Path

        import pandas as pd

        from bench.data.readers import Reader


        def read_flat(spec, where):
            files = sorted(p.name for p in Path(spec.root).glob("*.png"))
            return pd.DataFrame({"id": files, "rel": files, "group": files,
                                 "label": [f.split("__")[0] for f in files]})


        READER = Reader(read_flat)
        ''',
    "protocol.py": '''
        """Nearest class mean (torch-free model; the runner is imported when it runs)."""
        from typing import ClassVar, Literal

        from pydantic import Field

        from bench.config.protocols import ProtocolBase


        class Centroid(ProtocolBase):
            kind: Literal["centroid"] = Field(description="`centroid`.")
            temperature: float = Field(0.1, gt=0, description="Softmax temperature.")
            runner: ClassVar[str | type] = "toy_plugin.runner:CentroidRunner"
        ''',
    "runner.py": '''
        import numpy as np
        import torch

        from bench.protocols.base import Protocol
        from bench.train.evaluate import TrialResult
        from bench.train.metrics import compute_metrics


        class CentroidRunner(Protocol):
            def run(self, backbone, spec, train, test, classes, seeds, device, max_lr,
                    on_epoch=None):
                backbone.eval()
                with torch.no_grad():  # squared distances to the class means
                    f_train, f_test = (backbone(d.images.float() / 255) for d in (train, test))
                sums = torch.zeros(len(classes), f_train.shape[1]).index_add_(
                    0, train.labels, f_train)
                means = sums / torch.bincount(train.labels, minlength=len(classes))[:, None]
                dist = torch.cdist(f_test, means) ** 2
                probs = torch.softmax(-dist / spec.temperature, 1).numpy()
                labels = test.labels.numpy()
                return [TrialResult(metrics=compute_metrics(probs, labels, classes),
                                    probs=probs.astype(np.float32), labels=labels, max_lr=0.0)
                        for _ in seeds]
        ''',
}

SUITE = TINY_SUITE.split("inits:")[0].replace("""  tgt:
    format: synthetic
    synthetic: {{n_classes: 3, n_images: 72, image_size: 16, imbalance: 0.5, seed: 5}}
""", """  tgt:
    format: flat
    root: {root}
""") + """\
inits:
  rnd: {{arch: tiny_resnet_w8, weights: random, seed: 0}}
stages:
  toy:
    method: toy
    data: [src:train]
    epochs: 1
    batch_size: 16
    image_size: 16
    params: {{weight: 0.5}}
protocols:
  nc:
    kind: centroid
    train: tgt:train
    test: tgt:test
    image_size: 16
    epochs: 1
    temperature: 0.5
grid:
  inits: [rnd]
  chains: [[toy]]
  protocols: [nc]
seeds: {{count: 2}}
"""


def _install(tmp_path: Path) -> Path:
    """pip-install the plugin package into ``tmp_path/site`` (offline, no build isolation)."""
    pytest.importorskip("setuptools")
    pkg = tmp_path / "pkg"
    (pkg / "toy_plugin").mkdir(parents=True)
    (pkg / "pyproject.toml").write_text(PYPROJECT)
    for name, text in FILES.items():
        (pkg / "toy_plugin" / name).write_text(textwrap.dedent(text).lstrip())
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(site), str(pkg)], check=True,
                   capture_output=True)
    assert (site / "bench_toy_plugin-0.1.dist-info" / "entry_points.txt").exists()
    return site


def _images(root: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    root.mkdir()
    for i in range(36):
        label = ("red", "green", "blue")[i % 3]
        px = rng.integers(0, 80, (16, 16, 3), dtype=np.uint8)
        px[..., i % 3] += 150
        Image.fromarray(px).save(root / f"{label}__{i:02d}.png")


def _bench(*args: str, site: Path, cwd: Path) -> tuple[int, str]:
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    proc = bench_process(*args, cwd=cwd, env={"PYTHONPATH": path})
    out, _ = proc.communicate(timeout=300)
    return proc.returncode, out


@pytest.mark.slow
def test_an_installed_plugin_adds_a_method_a_format_and_a_protocol(tmp_path: Path) -> None:
    site = _install(tmp_path)
    _images(tmp_path / "images")
    suite = tmp_path / "plugin.yaml"
    suite.write_text(SUITE.format(output=tmp_path / "out", root=tmp_path / "images"))
    rc, out = _bench("run", str(suite), site=site, cwd=tmp_path)
    assert rc == 0, out
    assert "1 stage(s) trained, 0 already done; 2 trial(s) run" in out
    rc, out = _bench("plan", str(suite), site=site, cwd=tmp_path)
    assert rc == 0, out
    assert "plugin bench.methods: toy = toy_plugin.method:Toy (bench-toy-plugin 0.1)" in out
    assert "plugin bench.protocols: centroid = toy_plugin.protocol:Centroid" in out
    assert re.search(r"tgt +36 images, 3 classes", out)
    assert re.search(r"finished +rnd\+toy ", out) and re.search(r"2/2 +rnd\+toy/nc", out)
    # without the plugin the suite's names are unknown, before anything trains
    rc, out = _bench("plan", str(suite), site=tmp_path / "nowhere", cwd=tmp_path)
    assert rc == 2 and "protocols.nc.kind: 'centroid' is not one of" in out, out


@pytest.fixture
def installed(tmp_path: Path, monkeypatch):
    """The plugin installed and registered in this process; bench's registries restored
    after."""
    from bench.config import protocols as config_protocols
    from bench.config.schema import Suite
    from bench.data.readers import READERS
    from bench.plan import plugins
    from bench.ssl.methods import PLUGIN_METHODS

    site = _install(tmp_path)
    monkeypatch.syspath_prepend(str(site))
    kinds, readers = dict(config_protocols.PROTOCOL_KINDS), dict(READERS)
    plugins.load_plugins.cache_clear()
    yield site
    plugins.load_plugins.cache_clear()
    PLUGIN_METHODS.clear()
    READERS.clear()
    READERS.update(readers)
    config_protocols.PROTOCOL_KINDS.clear()
    config_protocols.PROTOCOL_KINDS.update(kinds)
    Suite.model_fields["protocols"].annotation = dict[str, config_protocols.protocol_union()]
    Suite.model_rebuild(force=True)
    for name in [m for m in sys.modules if m.startswith("toy_plugin")]:
        del sys.modules[name]


def test_a_plugins_source_files_are_part_of_the_keys(installed: Path, tmp_path: Path) -> None:
    """Editing the protocol's runner changes its cells' keys (not the stage's); editing the
    method's file changes the stage's key."""
    from conftest import suite_plan

    _images(tmp_path / "images")
    suite = tmp_path / "plugin.yaml"
    suite.write_text(SUITE.format(output=tmp_path / "out", root=tmp_path / "images"))

    def keys() -> tuple[str, list[str]]:
        plan = suite_plan(suite)
        return plan.stages[0].key, [t.key for t in plan.trials]

    stage, trials = keys()
    runner = installed / "toy_plugin" / "runner.py"
    runner.write_text(runner.read_text() + "\n# edited\n")
    stage2, trials2 = keys()
    assert stage2 == stage and not set(trials2) & set(trials)
    method = installed / "toy_plugin" / "method.py"
    method.write_text(method.read_text() + "\n# edited\n")
    stage3, trials3 = keys()
    assert stage3 != stage and not set(trials3) & set(trials2)


def test_a_broken_or_clashing_plugin_is_named_with_its_distribution(tmp_path: Path,
                                                                    monkeypatch) -> None:
    from importlib.metadata import EntryPoint

    from bench.plan import plugins

    class Dist:
        name, version = "bad-plugin", "2.0"

    def fake(groups: dict[str, list[tuple[str, str]]]):
        def entry_points(group: str):
            eps = [EntryPoint(n, v, group) for n, v in groups.get(group, [])]
            for ep in eps:
                object.__setattr__(ep, "dist", Dist)
            return eps
        return entry_points

    cases = [
        ({"bench.methods": [("barlow_twins", "x.y:Z")]}, "one of bench's own methods"),
        ({"bench.readers": [("flat", "no_such_module_here:READER")]},
         "cannot load 'no_such_module_here:READER': ModuleNotFoundError"),
        ({"bench.protocols": [("knn", "bench.config.protocols:KnnSpec")]},
         "one of bench's own protocol kinds"),
        ({"bench.protocols": [("other", "bench.config.protocols:KnnSpec")]},
         "its model's kind is ('knn',), not Literal['other']"),
    ]
    for groups, why in cases:
        monkeypatch.setattr(plugins, "entry_points", fake(groups))
        plugins.load_plugins.cache_clear()
        with pytest.raises(plugins.PluginError) as err:
            plugins.load_plugins()
        assert why in str(err.value)
        assert "(bench." in str(err.value) and "from bad-plugin 2.0" in str(err.value)
    plugins.load_plugins.cache_clear()
