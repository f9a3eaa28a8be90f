"""Text view of a plan for ``bench plan``: stages, cells, trials, status and a rough cost."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from bench.config.names import parse_ref
from bench.plan import Plan
from bench.plan.cost import TRAIN, stage_cost, stage_images, trial_cost, unsized
from bench.plan.plugins import load_plugins
from bench.track import FINISHED, RunRecord


def describe_plan(plan: Plan, status: Mapping[str, RunRecord] | None, trials: bool = False,
                  calibrations: Path | None = None) -> str:
    """Human-readable plan. ``status``: runs by key (None: no store yet); ``trials``: list each
    trial with its status and key; ``calibrations``: the folder of ``bench calibrate``'s rates
    (the time estimate uses them where the store has no finished units)."""
    status = status or {}

    def st(key: str) -> str:
        r = status.get(key)
        return r.status.lower() if r else "pending"

    suite = plan.suite
    names = plan.cell_names()
    reps = [s for s in plan.stages if s.replicate]
    lines = [f"suite {suite.name}: {len(plan.stages)} stage(s), {len(names)} cell(s), "
             f"{len(plan.trials)} trial(s) ({suite.seeds.count} seeds per cell"
             + (f" and pre-trained encoder; {len(plan.cells)} (cell, replicate) pairs"
                if len(plan.cells) > len(names) else "") + ")"]
    if reps:
        lines.append("replicated stages: " + ", ".join(
            f"{name} ×{spec.replicates}" for name, spec in suite.stages.items()
            if spec.replicates > 1 and any(s.name == name for s in reps)))
    lines.extend(f"plugin {p}" for p in load_plugins())
    lines.append("")
    lines.append("datasets:")
    unread, unknown = set(plan.unread), unsized(plan)
    for name, ds in plan.datasets.items():
        if name in unread:
            sizes = ds.spec.declared_sizes()
            lines.append(f"  {name:<20} cannot be read (see the missing inputs below)" + (
                f"; declares {ds.spec.images} images: "
                + ", ".join(f"{p} {n}" for p, n in sizes.items()) if sizes else ""))
            continue
        parts = ", ".join(f"{p} {len(ds.part(p))}" for p in ds.parts)
        lines.append(f"  {name:<20} {len(ds.records)} images, {len(ds.classes)} classes: {parts}")
    if plan.stages:
        lines.append("")
        lines.append("stages (pre-training):")
        for s in plan.stages:
            n = "?" if set(unknown) & {parse_ref(r)[0] for r in s.spec.data} \
                else stage_images(plan, s)
            epochs = s.spec.warmup_epochs + s.spec.epochs
            lines.append(f"  {st(s.key):<9} {s.display:<40} {s.spec.method:<14} {n} images × "
                         f"{epochs} epochs  key {s.key[:12]}")
    lines.append("")
    lines.append("cells (finished/total trials):")
    eval_cost = 0.0
    done_total = 0
    for c in plan.cells:
        cell_trials = plan.trials_of(c)
        done = sum(1 for t in cell_trials if st(t.key) == FINISHED.lower())
        failed = sum(1 for t in cell_trials if st(t.key) in ("failed", "killed"))
        done_total += done
        eval_cost += trial_cost(plan, c) * (len(cell_trials) - done)
        extra = f", {failed} failed" if failed else ""
        lines.append(f"  {done:>3}/{len(cell_trials):<3} {c.display:<48} key {c.key[:12]}{extra}")
        if trials:
            for t in cell_trials:
                lines.append(f"          {st(t.key):<9} seed {t.seed:<5} key {t.key[:12]}")
    pending_stages = [s for s in plan.stages if st(s.key) != FINISHED.lower()]
    lines.append("")
    lines.append(f"finished: {done_total}/{len(plan.trials)} trials, "
                 f"{len(plan.stages) - len(pending_stages)}/{len(plan.stages)} stages")
    gate = _gate(plan)
    lines += sequential_lines(plan, status, gate)
    if not unknown:
        skip = {t.key for t in gate.stopped(dict(status), plan.trials)} if gate else set()
        lines += time_lines(plan, status, calibrations, skip)
    pend_stage_cost = sum(stage_cost(plan, s) for s in pending_stages)
    if plan.missing:
        lines.append("")
        lines.append(f"missing inputs ({len(plan.missing)}): keys shown are provisional until "
                     "these are in place")
        lines += [f"  - {m}" for m in plan.missing]
    if unknown:
        lines.append("remaining cost: unknown until the missing data are in place (or until "
                     f"datasets {', '.join(unknown)} declare their `images`)")
    else:
        lines.append(f"remaining cost ≈ {(pend_stage_cost + eval_cost) / 1e6:.2f} M image "
                     f"forward passes ({pend_stage_cost / 1e6:.2f} M pre-training, "
                     f"{eval_cost / 1e6:.2f} M evaluation; a training pass counts "
                     f"as {TRAIN:g})" + (f", by the image counts that datasets "
                                         f"{', '.join(sorted(unread))} declare" if unread else ""))
    return "\n".join(lines)


def explain_plan(plan: Plan) -> str:
    """Every init, stage and protocol the plan uses, fully resolved as YAML: each default made
    explicit (method parameters through the method's own model), to compare line by line with
    a paper's appendix."""
    import io

    from ruamel.yaml import YAML

    from bench.ssl.methods import method_params

    suite = plan.suite
    used_stages = dict.fromkeys(s.name for s in plan.stages)
    used_protocols = dict.fromkeys(c.protocol for c in plan.cells)

    def plain(model) -> dict:
        return model.model_dump(mode="json", exclude={"description"})

    doc: dict = {"inits": {n: plain(suite.inits[n]) for n in plan.inits}, "stages": {},
                 "protocols": {p: plain(suite.protocols[p]) for p in used_protocols}}
    for name in used_stages:
        spec = suite.stages[name]
        entry = plain(spec)
        entry["params"] = method_params(spec.method).model_validate(spec.params).model_dump(
            mode="json")
        doc["stages"][name] = entry
    yaml = YAML()
    yaml.width = 100
    out = io.StringIO()
    out.write(f"# {suite.name}: every setting of what runs, defaults included\n")
    yaml.dump(_block(doc), out)
    return out.getvalue()


RESOLVED_SUITE = "suite.resolved.yaml"
"""The file (in the output folder, and an artifact of every cell run) holding the suite as it
ran: environment variables read, ``--set`` overrides and profile applied, defaults explicit."""


def resolved_suite(loaded) -> str:
    """The whole suite as it runs, as YAML (with where it came from in a header)."""
    import io

    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.width = 100
    out = io.StringIO()
    out.write(f"# {loaded.suite.name}, resolved from {loaded.path}"
              + "".join(f"\n#   --set {o}" for o in loaded.overrides) + "\n")
    yaml.dump(_block(loaded.suite.model_dump(mode="json")), out)
    return out.getvalue()


def _block(value):
    """Mappings as blocks, lists of scalars on one line (YAML a person reads)."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(value, dict):
        return CommentedMap((k, _block(v)) for k, v in value.items())
    if isinstance(value, list):
        seq = CommentedSeq(_block(v) for v in value)
        if all(not isinstance(v, dict | list) for v in value):
            seq.fa.set_flow_style()
        return seq
    return value


def _gate(plan: Plan):
    """The suite's :class:`bench.execute.sequential.SequentialGate`, or None without
    sequential seeds (imported only then: it needs scipy.stats)."""
    if plan.suite.seeds.sequential is None:
        return None
    from bench.execute.sequential import SequentialGate

    return SequentialGate.of(plan)


def sequential_lines(plan: Plan, status: Mapping[str, RunRecord], gate) -> list[str]:
    """With sequential seeds (``gate``): the looks, how many are complete, which cells stopped
    and how many trials will therefore not run ([] for a fixed number of seeds)."""
    seq = plan.suite.seeds.sequential
    if seq is None or gate is None:
        return []
    state = gate.state(dict(status))
    stopped = [n for n, k in state.stop.items() if k is not None and k < len(seq.looks) - 1]
    never = len(gate.stopped(dict(status), plan.trials))
    out = [f"sequential seeds: looks after {'/'.join(map(str, seq.looks))} seeds per encoder "
           f"({gate.design.spending_name} spending), {state.complete} of {len(seq.looks)} "
           "complete"]
    if stopped:
        out.append(f"  stopped early: {', '.join(f'{n} (look {state.stop[n] + 1})' for n in stopped)}"
                   f"; {never} trial(s) will not run")
    return out


def time_lines(plan: Plan, status: Mapping[str, RunRecord], calibrations: Path | None,
               skip: set[str]) -> list[str]:
    """Expected hours of the remaining units (but the trials in ``skip``, which sequential
    seeds will not run), per unit kind and in all, by the rates of this store's finished units
    and by each ``bench calibrate`` device class in ``calibrations``."""
    from bench.plan.rates import Rates, finished_units, fit, pending_units

    done = {k for k, r in status.items() if r.status == FINISHED}
    todo = pending_units(plan, done, skip)
    sources: list[tuple[str, Rates]] = []
    finished = finished_units(plan, status)
    if finished:
        sources.append((f"this store's {len(finished)} finished unit(s)", fit(finished)))
    for path in sorted(calibrations.glob("*.json")) if calibrations and \
            calibrations.is_dir() else []:
        sources.append((f"bench calibrate: {path.stem}", Rates.from_json(path.read_text())))
    if not todo:
        return []
    if not sources:
        return ["expected time: no rates yet (finish some units, or run `bench calibrate` on "
                "the machine that will run it)"]
    kinds = list(dict.fromkeys(u.kind for u in todo))
    out = []
    for name, rates in sources:
        per = {k: sum(rates.seconds(u) or 0.0 for u in todo if u.kind == k) for k in kinds}
        gaps = [k for k in kinds if all(rates.seconds(u) is None for u in todo if u.kind == k)]
        text = ", ".join(f"{k} {_duration(per[k])}" for k in kinds if k not in gaps)
        out.append(f"expected time by {name}: {_duration(sum(per.values()))} ({text})"
                   + (f"; no rate for {', '.join(gaps)}" if gaps else ""))
    return out


def _duration(seconds: float) -> str:
    """``42 s``, ``3.5 min`` or ``12.3 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
