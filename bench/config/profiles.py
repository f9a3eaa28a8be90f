"""Profiles: named sets of overrides applied to any suite before validation.

``smoke`` shrinks a suite so that it runs end to end in minutes — 2 seeds, 1 epoch (+ at most
1 warm-up epoch) per stage and protocol, 32 px images, batches of 8, 64-d projectors, short LR
searches, one TTA pass, at most 2 replicates of a replicated stage — to check data, weights and
configuration before spending GPU hours.
Its results go to ``<output>-smoke`` unless ``--output`` says otherwise.

``optuna`` keeps everything but how each protocol chooses its max lr: an Optuna study per cell
(``lr_search.method: optuna``, 8 candidates of 2 epochs on a validation split of the training
part, the suite's own ``low``/``high``/``seed`` kept when it gives them), in one storage under
``<output>-optuna/optuna/`` that ``optuna-dashboard`` opens. A protocol already searching with
Optuna is left as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

SmokeParams = Callable[[str, dict[str, Any]], dict[str, Any]]
"""(method name, raw params) → the params the smoke profile trains with (from the method's
``Params`` model; see :meth:`bench.ssl.methods.params.MethodParams.smoke`)."""
PROFILES = ("smoke", "optuna")
OPTUNA_SEARCH = {"method": "optuna", "per": "cell", "n_trials": 8, "budget_epochs": 2}
"""What the ``optuna`` profile sets in every protocol's ``lr_search``."""


def _short_search(block: dict[str, Any]) -> None:
    search = block.get("lr_search")
    if isinstance(search, dict):
        search["num_it"] = 10
        search["n_trials"] = 2
        search["budget_epochs"] = 1


def _shrink(block: dict[str, Any]) -> None:
    block["epochs"] = 1
    if "warmup_epochs" in block and block["warmup_epochs"] is not None:
        block["warmup_epochs"] = min(int(block["warmup_epochs"]), 1)
    block["image_size"] = 32
    block["batch_size"] = 8
    _short_search(block)


def apply_profile(data: dict[str, Any], name: str,
                  smoke_params: SmokeParams | None = None) -> dict[str, Any]:
    """Apply profile ``name`` to a raw suite mapping (in place) and return it; a stage's method
    parameters are shrunk by ``smoke_params`` (given by the layer that knows the methods)."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}")
    if name == "optuna":
        return _optuna(data)
    seeds = data.setdefault("seeds", {})
    if isinstance(seeds, dict):
        seeds["count"] = 2
    for stage in (data.get("stages") or {}).values():
        if not isinstance(stage, dict):
            continue
        _shrink(stage)
        if isinstance(stage.get("replicates"), int) and stage["replicates"] > 2:
            stage["replicates"] = 2  # still replicated (the path is checked), but cheap
        params = stage.get("params", {})
        if smoke_params is not None and isinstance(params, dict):
            shrunk = smoke_params(str(stage.get("method")), params)
            if shrunk or "params" in stage:
                stage["params"] = shrunk
    for proto in (data.get("protocols") or {}).values():
        if not isinstance(proto, dict):
            continue
        _shrink(proto)
        tta = proto.get("tta")
        if isinstance(tta, dict) and tta.get("mode", "augment") == "augment":
            tta["passes"] = 1
    data["output"] = f"{data.get('output') or 'runs/' + str(data.get('name'))}-smoke"
    return data


def _optuna(data: dict[str, Any]) -> dict[str, Any]:
    for proto in (data.get("protocols") or {}).values():
        if not isinstance(proto, dict):
            continue
        search = proto.get("lr_search")
        search = dict(search) if isinstance(search, dict) else {}
        if search.get("method") != "optuna":
            kept = {k: search[k] for k in ("low", "high", "seed", "storage") if k in search}
            proto["lr_search"] = {**OPTUNA_SEARCH, **kept}
    data["output"] = f"{data.get('output') or 'runs/' + str(data.get('name'))}-optuna"
    return data
