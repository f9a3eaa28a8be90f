"""What a unit of work costs, relative to the others: for ``bench plan``'s cost line and the ETA of
``bench run``.

The unit is one *forward pass of one image* through the encoder; a training pass (forward and
backward) costs :data:`TRAIN` of them, a pass that trains only the last block or a head on a
frozen encoder :data:`PARTIAL`. Stages of self-supervised methods see two views of each image.
These are relative weights, not seconds: the ETA converts them with the seconds per unit that the
units finished so far in the run actually took (:class:`bench.progress.Eta`), and before any has,
with those the store holds from earlier runs (:func:`seconds_per_cost`).
"""

from __future__ import annotations

from bench.config.names import parse_ref
from bench.plan.nodes import Cell, Plan, StageNode

FORWARD, PARTIAL, TRAIN = 1.0, 1.25, 3.0
"""Forward only; forward + the backward of a small part (last block, projector); forward +
backward through the whole encoder (a backward pass ≈ two forwards)."""


def part_size(plan: Plan, ref: str) -> int:
    """Images in a ``dataset:part`` reference; of a dataset that cannot be read (a lenient
    plan), the size its declared ``images`` imply (:func:`unsized`: those without)."""
    ds, part = parse_ref(ref)
    if ds in plan.unread:
        return (plan.datasets[ds].spec.declared_sizes() or {}).get(part, 0)
    return len(plan.datasets[ds].part(part))


def unsized(plan: Plan) -> list[str]:
    """The datasets that cannot be read and declare no size: what the plan cannot cost."""
    return [n for n in plan.unread if plan.datasets[n].spec.declared_sizes() is None]


def stage_images(plan: Plan, stage: StageNode) -> int:
    """Images one epoch of the stage trains on (its parts, each ``repeat`` times)."""
    reps = stage.spec.repeat or [1] * len(stage.spec.data)
    return sum(part_size(plan, r) * k for r, k in zip(stage.spec.data, reps, strict=True))


def stage_cost(plan: Plan, stage: StageNode) -> float:
    """Forward-pass equivalents of a stage: warm-up epochs with the encoder frozen (the
    projector trains), then epochs training all of it (``unfreeze: all``) or its last block."""
    spec = stage.spec
    views = 1 if spec.method == "supervised" else 2
    per_epoch = stage_images(plan, stage) * views
    main = TRAIN if spec.unfreeze == "all" else PARTIAL
    return per_epoch * (spec.warmup_epochs * PARTIAL + spec.epochs * main)


def trial_cost(plan: Plan, cell: Cell) -> float:
    """Forward-pass equivalents of one trial of ``cell``: the warm-up (head only), the epochs
    (whole encoder when the kind trains it, else the head on frozen features; features cached,
    or a kind that trains nothing (knn): one pass), the test passes (× TTA passes)."""
    spec = cell.spec
    n_train = part_size(plan, spec.train) * spec.label_fraction  # ≈ the labelled subset
    n_test = part_size(plan, spec.test)
    tta = spec.tta.passes if spec.tta.mode == "augment" else 1
    if spec.cache_features or spec.trains_nothing:
        train = n_train * FORWARD
    else:
        main = TRAIN if spec.trains_encoder else PARTIAL
        train = n_train * (spec.n_warmup * PARTIAL + spec.epochs * main)
    return train + n_test * tta * FORWARD


def unit_costs(plan: Plan) -> dict[str, float]:
    """Unit key (stage or trial) → its cost."""
    out = {s.key: stage_cost(plan, s) for s in plan.stages}
    out.update({t.key: trial_cost(plan, t.cell) for t in plan.trials})
    return out


def seconds_per_cost(snapshot, costs: dict[str, float]) -> float | None:
    """Seconds per unit of cost of the units the store holds finished (their recorded start
    and end), or None when it holds none: the ETA's rate before this run has finished any."""
    seconds = cost = 0.0
    for key, rec in snapshot.best.items():
        if key in costs and rec.status == "FINISHED" and rec.end_time and costs[key] > 0:
            seconds += max(rec.end_time - rec.start_time, 0) / 1000
            cost += costs[key]
    return seconds / cost if cost > 0 and seconds > 0 else None
