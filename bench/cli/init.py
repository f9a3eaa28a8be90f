"""``bench init FOLDER``: a commented starter suite for a user's image folder.

The folder holds one sub-folder per class (``FOLDER/<class>/*.jpg``), or ``train/`` and
``test/`` that each do (DermNet's layout: the given parts are kept). The suite it writes is the
paper's study on that folder — ImageNet SL vs Barlow Twins ResNet-50, each also further
pre-trained (last block) on the training images, fine-tuned and linearly probed, with the
contrasts a reader asks first — every choice commented, to be edited before running.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from bench.errors import EXIT_OK, BenchError

STARTER = """\
# A starter suite written by `bench init` for {folder}
# ({layout}; {n_images} images, {n_classes} classes: {counts}).
# Edit it, then: bench plan {suite}   (what runs, what is missing, the cost)
#                bench run {suite} --profile smoke   (everything end to end in minutes)
#                bench run {suite} && bench report --format html
name: {name}
description: >
  ImageNet supervised (SL) vs Barlow Twins (SSL) ResNet-50, each also further pre-trained with
  Barlow Twins on the training images, fine-tuned and linearly probed on {folder_name}.
output: ${{BENCH_OUTPUT:-runs/{name}}}

datasets:
  target:
    format: image_folder
    root: ${{{var}:-{root}}}          # or set {var}
{folders}    split:
{split}
inits:
  SL:                               # torchvision's ImageNet weights (bench never downloads:
    arch: resnet50                  # `bench plan` says which file to place where)
    weights: torchvision:ResNet50_Weights.IMAGENET1K_V2
  SSL:                              # Barlow Twins ImageNet ResNet-50 (facebookresearch/barlowtwins)
    arch: resnet50
    weights: file:${{BT_WEIGHTS:-weights/barlowtwins_resnet50.pth}}

stages:
  I_SSLp:                           # further pre-training on the training images (labels unused)
    method: barlow_twins
    data: [target:train]
    warmup_epochs: 1                # encoder frozen, projector trains
    epochs: 20
    unfreeze: last_block            # the paper's SSLp; `all` retrains the whole encoder
    batch_size: 64
    image_size: 224
    lr_search: {{method: fixed, lr: 0.001}}

protocols:
  fine_tune:
    kind: fine_tune
    train: target:train
    test: target:test               # never used for any choice
    epochs: 20
    batch_size: 64
    image_size: 224
    lr_search: {{method: lr_finder}}  # or {{method: optuna}}, or {{method: fixed, lr: 0.001}}
  linear_probe:
    kind: linear_probe
    train: target:train
    test: target:test
    epochs: 30
    batch_size: 64
    image_size: 224
    cache_features: true            # features computed once: seconds per trial
    tta: {{mode: clean}}
    lr_search: {{method: fixed, lr: 0.01}}

grid:
  inits: [SL, SSL]
  chains: [[], [I_SSLp]]            # the encoder as given, and further pre-trained
  protocols: [fine_tune, linear_probe]

seeds:
  count: 10                         # trials per cell; the paper ran 35

contrasts:                          # declared before running; two-sided unless you know better
  - {{a: SSL/linear_probe, b: SL/linear_probe, family: init, label: SSL vs SL (probe)}}
  - {{a: SSL/fine_tune, b: SL/fine_tune, family: init, label: SSL vs SL (fine-tune)}}
  - {{a: SL+I_SSLp/linear_probe, b: SL/linear_probe, family: further,
     label: SL + I_SSLp vs SL (probe)}}
  - {{a: SSL+I_SSLp/linear_probe, b: SSL/linear_probe, family: further,
     label: SSL + I_SSLp vs SSL (probe)}}
  # An equivalence verdict (A ≈ B) needs a margin you would defend before seeing the data,
  # e.g. `margin: 0.01` on a contrast, or report.margins below; bench never assumes one.

report:
  title: "{folder_name}: which initialisation?"
  metrics: [accuracy, f1_macro, balanced_accuracy]
  # margins: {{accuracy: 0.01}}
"""


def _classes(folder: Path) -> dict[str, int]:
    """Class sub-folder → its number of images."""
    from bench.data.readers import IMAGE_EXTS

    out = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        n = sum(1 for f in sub.iterdir() if f.suffix.lower() in IMAGE_EXTS)
        if n:
            out[sub.name] = n
    return out


def starter_suite(folder: Path, suite: Path, name: str | None = None) -> str:
    """The starter suite's text for ``folder`` (raises :class:`BenchError` on a folder that is
    not one class per sub-folder)."""
    if not folder.is_dir():
        raise BenchError(f"{folder}: not a folder; give a folder with one sub-folder per class")
    parts = [p for p in ("train", "test") if (folder / p).is_dir()]
    if parts == ["train", "test"]:
        counts: dict[str, int] = {}
        for p in parts:
            for k, v in _classes(folder / p).items():
                counts[k] = counts.get(k, 0) + v
        layout = "train/ and test/ given, one sub-folder per class in each"
        folders = "    folders: [train, test]         # the given parts are kept\n"
        split = "      column: folder                # parts: train, test (as given)\n"
    else:
        counts = _classes(folder)
        layout = "one sub-folder per class"
        folders = ""
        split = ("      seed: 0\n"
                 "      fractions: {train: 0.5, test: 0.5}   # per class; or counts: {train: "
                 "{<class>: n, …}}\n")
    if len(counts) < 2:
        raise BenchError(f"{folder}: found {len(counts)} class sub-folder(s) with images; "
                         "a suite needs at least 2 classes, one "
                         "sub-folder each (or train/ and test/ that each hold them)")
    name = name or re.sub(r"[^A-Za-z0-9_-]+", "_", folder.resolve().name).strip("_-") or "study"
    if not name[0].isalpha():
        name = f"s_{name}"
    var = re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_") + "_DIR"
    shown = ", ".join(f"{k} {v}" for k, v in list(counts.items())[:8])
    more = f", … ({len(counts) - 8} more)" if len(counts) > 8 else ""
    return STARTER.format(folder=folder, folder_name=folder.resolve().name, layout=layout,
                          n_images=sum(counts.values()), n_classes=len(counts),
                          counts=shown + more, suite=suite, name=name, var=var,
                          root=folder.as_posix(), folders=folders, split=split)


def cmd_init(args: argparse.Namespace) -> int:
    """``bench init FOLDER [--suite PATH] [--name NAME] [--force]``."""
    from bench.plan import load_suite

    suite = args.suite or Path("suites") / f"{args.folder.resolve().name}.yaml"
    if suite.exists() and not args.force:
        raise BenchError(f"{suite} exists; choose another with --suite, or --force to "
                         "overwrite it")
    text = starter_suite(args.folder, suite, args.name)
    suite.parent.mkdir(parents=True, exist_ok=True)
    suite.write_text(text, encoding="utf-8")
    load_suite(suite)  # what it wrote is a valid suite
    print(f"wrote {suite}: edit it, then `bench plan {suite}`")
    return EXIT_OK
