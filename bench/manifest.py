"""Reproducibility manifest of a run, and ``bench verify``.

Every stage and trial run carries, as MLflow tags: the environment (git commit, dirty flag and a
sha256 of the uncommitted diff, package versions, torch / CUDA / cuDNN, device, determinism
flags — see :func:`bench.track.environment_tags`), the sha256 of each dataset part's manifest
(``bench.manifest.<ds>:<part>``: ids, paths, labels, groups and file sizes), the sha256 of each
used dataset's split (``bench.split.<ds>``: which image went to which part), the sha256 of the
initial weights file (``bench.weights``) and of the encoder the run started from or produced
(``bench.encoder_sha256``).

``bench verify SUITE`` recomputes all of these from the files as they are now and lists every
difference with the runs it concerns; it exits 1 on any mismatch. Data are compared through
their manifests (names, labels and file sizes), not by re-reading every pixel.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path

from bench.plan import Plan
from bench.track import FINISHED, Tag, Tracker, environment_tags


def split_hash(dataset) -> str:
    """sha256 of a dataset's split: the (id, part) pairs, sorted by id."""
    rows = dataset.records[["id", "part"]].astype(str).sort_values("id")
    return hashlib.sha256(rows.to_csv(index=False, lineterminator="\n").encode()).hexdigest()


def _file_sha(path: Path) -> str:
    from bench.models.weights import sha256_file

    return sha256_file(path)


def expected_tags(plan: Plan) -> dict[str, str]:
    """Every manifest tag value as recomputed now (keys as recorded on the runs)."""
    out: dict[str, str] = {}
    for name, ds in plan.datasets.items():
        out[Tag.SPLIT_PREFIX + name] = split_hash(ds)
        for part in ds.parts:
            out[f"{Tag.MANIFEST_PREFIX}{name}:{part}"] = ds.manifest_hash(part)
        out[Tag.MANIFEST_PREFIX + name] = ds.manifest_hash(None)
    return out


def verify_suite(plan: Plan, tracker: Tracker, output: Path) -> tuple[str, bool]:
    """Compare the manifests of the finished runs of the plan's stages and cells (by name, so
    that runs made on inputs that have changed since are found) with the inputs as they are."""
    now = expected_tags(plan)
    inits = {n.key: n for n in plan.inits.values()}
    stage_keys = {s.key for s in plan.stages}
    labels = {s.label for s in plan.stages}
    cells = {c.name for c in plan.cells}
    runs = [r for r in tracker.runs() if r.status == FINISHED
            and ((r.kind == "stage" and r.tags.get(Tag.CHAIN) in labels)
                 or (r.kind == "trial" and r.tags.get(Tag.CELL) in cells))]
    problems: dict[str, list[str]] = defaultdict(list)
    checked: dict[str, int] = defaultdict(int)
    encoder_sha: dict[str, str] = {}
    for key in stage_keys:
        path = output / "encoders" / f"{key}.pt"
        if path.exists():
            encoder_sha[key] = _file_sha(path)
    for r in runs:
        name = r.tags.get("mlflow.runName", r.key[:12])
        for tag, value in r.tags.items():
            if tag.startswith((Tag.MANIFEST_PREFIX, Tag.SPLIT_PREFIX)):
                kind = "data" if tag.startswith(Tag.MANIFEST_PREFIX) else "split"
                checked[kind] += 1
                if tag not in now:
                    problems[f"{tag.removeprefix('bench.')}: no longer in the suite"].append(name)
                elif now[tag] != value:
                    problems[f"{tag.removeprefix('bench.')}: recorded {value[:12]}, now "
                             f"{now[tag][:12]}"].append(name)
        init_key = r.tags.get(Tag.INIT_KEY)
        if init_key and Tag.WEIGHTS in r.tags:
            checked["weights"] += 1
            node = inits.get(init_key)
            if node is None or node.fingerprint != r.tags[Tag.WEIGHTS]:
                problems[f"weights of {r.tags.get(Tag.INIT, '?')}: recorded "
                         f"{r.tags[Tag.WEIGHTS][:12]}, now "
                         f"{node.fingerprint[:12] if node else 'different'}"].append(name)
        enc = r.tags.get(Tag.ENCODER_SHA)
        enc_key = r.key if r.kind == "stage" else r.tags.get(Tag.ENCODER_KEY, "")
        if enc and enc_key in encoder_sha:
            checked["encoders"] += 1
            if encoder_sha[enc_key] != enc:
                problems[f"encoder {enc_key[:12]}: recorded {enc[:12]}, file now "
                         f"{encoder_sha[enc_key][:12]}"].append(name)
    env_now = environment_tags()
    drift: dict[str, set[str]] = defaultdict(set)
    for r in runs:
        for tag in ("bench.torch", "bench.torchvision", "bench.kornia", "bench.cuda",
                    "bench.cudnn", "bench.git_commit"):
            if tag in r.tags and r.tags[tag] != env_now.get(tag):
                drift[tag].add(r.tags[tag])
    lines = [f"verify {plan.suite.name}: {len(runs)} finished run(s); checked "
             + ", ".join(f"{v} {k} hash(es)" for k, v in sorted(checked.items()))]
    if problems:
        lines.append("MISMATCH:")
        for what, names in problems.items():
            shown = ", ".join(sorted(set(names))[:5])
            more = f" and {len(set(names)) - 5} more" if len(set(names)) > 5 else ""
            lines.append(f"  {what} ({len(set(names))} run(s): {shown}{more})")
    else:
        lines.append("OK: data manifests, splits, weights and encoders match the runs")
    if drift:
        lines.append("environment differs from the runs (informational):")
        for tag, values in drift.items():
            lines.append(f"  {tag.removeprefix('bench.')}: runs {', '.join(sorted(values))}; "
                         f"now {env_now.get(tag)}")
    return "\n".join(lines), not problems

