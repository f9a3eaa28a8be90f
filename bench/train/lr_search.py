"""Choosing a protocol's max lr with Optuna, on a validation split carved from the training part.

Every study of a suite lives in one Optuna storage under ``<output>/optuna/`` — a journal file
``studies.journal`` (default) or SQLite ``optuna.db`` — that ``optuna-dashboard`` opens. A study
is named after its cell (``SSL+I_SSLp/linear_probe · 3f2a9c1b``, a trial's search
``s03 · SSL+I_SSLp/linear_probe · 3f2a9c1b``: the name, then its key's first 8 hex digits, so an
edited suite never resumes a study of other settings) and carries the cell and its key as user
attributes; an interrupted search resumes without repeating finished candidates.
The sampler is TPE seeded with ``lr_search.seed``; candidates are trained for ``budget_epochs`` and
scored by validation accuracy after each epoch (median pruning). The test part is never an
argument here: nothing in the search can read it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench.config.schema import LRSearchSpec, ProtocolSpec
from bench.data.loader import ImageSet


@dataclass
class SearchResult:
    """The chosen lr and every candidate: (number, lr, validation accuracy or None, state)."""

    lr: float
    trials: list[tuple[int, float, float | None, str]]


def study_seed(search: LRSearchSpec, seeds: dict[str, int]) -> int:
    """The seed of a per-trial optuna study: the trial's ``lr_search`` seed source (its own
    seed when ``seeds.vary`` lists ``lr_search``, the base seed's otherwise) mixed with
    ``lr_search.seed``; below 2**32 (numpy's limit)."""
    from bench.seeds import derive_seed

    return derive_seed(seeds["lr_search"], f"optuna:{search.seed}") % 2**32


def validation_split(train: ImageSet, fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
    """Stratified (per class) split of a labelled set into (fit, validation)."""
    assert train.labels is not None
    rows = train.items if train.items is not None else torch.arange(train.images.shape[0])
    labels = train.labels[rows]
    rng = np.random.default_rng([seed, 17])
    val_idx = []
    for c in torch.unique(labels).tolist():
        idx = rows[labels == c].numpy()
        idx = idx[rng.permutation(len(idx))]
        k = max(1, round(fraction * len(idx))) if len(idx) > 1 else 0
        val_idx.extend(idx[:k].tolist())
    val_set = set(val_idx)
    fit_idx = [int(i) for i in rows.tolist() if int(i) not in val_set]
    fit = ImageSet(train.images, train.labels, torch.tensor(fit_idx, dtype=torch.long))
    val_rows = torch.tensor(sorted(val_set), dtype=torch.long)
    return fit, ImageSet(train.images[val_rows], train.labels[val_rows])


def optuna_search(
    protocol: ProtocolSpec,
    make_backbone: Callable[[], nn.Module],
    train: ImageSet,
    class_names: list[str],
    seeds: dict[str, int],
    device: torch.device,
    storage_dir: Path,
    study_name: str,
    on_candidate: Callable[[int, float, float | None], None] | None = None,
    seed: int | None = None,
    attrs: dict[str, str] | None = None,
) -> SearchResult:
    """Run (or resume) the study and return the best lr. ``seed`` (default ``lr_search.seed``)
    seeds the sampler and the validation split: a per-trial study passes
    :func:`study_seed` of its trial. ``attrs``: the study's user attributes (which cell)."""
    import optuna

    from bench.train.trial import run_trial

    optuna.logging.set_verbosity(logging.WARNING)
    s = protocol.lr_search
    storage_dir.mkdir(parents=True, exist_ok=True)
    if s.storage == "sqlite":
        storage: object = f"sqlite:///{(storage_dir / 'optuna.db').resolve()}"
    else:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        storage = JournalStorage(JournalFileBackend(str(storage_dir / "studies.journal")))
    seed = s.seed if seed is None else seed
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(3, s.n_trials // 3))
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
              if s.pruner == "median" else optuna.pruners.NopPruner())
    study = optuna.create_study(study_name=study_name, storage=storage, sampler=sampler,
                                pruner=pruner, direction="maximize", load_if_exists=True)
    for k, v in (attrs or {}).items():
        if study.user_attrs.get(k) != v:
            study.set_user_attr(k, v)
    fit, val = validation_split(train, s.val_fraction, seed)
    short = protocol.model_copy(update={
        "epochs": s.budget_epochs,
        "lr_search": s.model_copy(update={"method": "fixed"}),
        "cache_features": False,
    })
    val_labels = val.labels.numpy()

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", s.low, s.high, log=True)
        scores: list[float] = []

        def after_epoch(epoch: int, predict: Callable[[ImageSet], np.ndarray]) -> None:
            acc = float((predict(val).argmax(1) == val_labels).mean())
            scores.append(acc)
            trial.report(acc, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        run_trial(make_backbone(), short, fit, val, class_names, seeds, device,
                  max_lr=lr, after_epoch=after_epoch)
        return scores[-1]

    def callback(study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
        if on_candidate is not None:
            on_candidate(frozen.number, frozen.params.get("lr", float("nan")), frozen.value)

    done = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE,
                                                  optuna.trial.TrialState.PRUNED)]
    remaining = s.n_trials - len(done)
    if remaining > 0:
        study.optimize(objective, n_trials=remaining, callbacks=[callback],
                       catch=())
    trials = [(t.number, t.params.get("lr", float("nan")), t.value, t.state.name)
              for t in study.trials]
    return SearchResult(lr=float(study.best_params["lr"]), trials=trials)
