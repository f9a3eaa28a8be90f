"""SLURM submission settings (never part of a key)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from bench.config.base import Strict


class SlurmSpec(Strict):
    """How ``bench run --executor slurm`` submits work through submitit (never part of a key).

    Units are packed into array tasks of about ``pack_minutes`` (estimated from finished runs of
    the same cell, else ``trial_minutes``/``stage_minutes``); arrays are split under
    ``max_array_size``; a task that times out or is preempted is requeued and resumes from the
    per-epoch checkpoints.
    """

    cluster: Literal["slurm", "local", "debug"] = Field(
        "slurm", description="submitit executor: slurm, or local/debug to try the path locally."
    )
    partition: str | None = Field(None, description="SLURM partition.")
    account: str | None = Field(None, description="SLURM account.")
    qos: str | None = Field(None, description="SLURM QoS.")
    time_min: int = Field(240, ge=1, description="Walltime of one array task (minutes).")
    pack_minutes: float = Field(
        180.0, gt=0, description="Pack units into a task until this much estimated work."
    )
    trial_minutes: float = Field(10.0, gt=0, description="Estimate for a trial never timed.")
    stage_minutes: float = Field(120.0, gt=0, description="Estimate for a stage never timed.")
    gpus_per_task: int = Field(1, ge=0, description="GPUs per task.")
    cpus_per_task: int = Field(8, ge=1, description="CPU cores per task.")
    mem_gb: float = Field(32.0, gt=0, description="Memory per task (GB).")
    max_array_size: int | None = Field(
        None, ge=1, description="Largest array (default: MaxArraySize from scontrol, else 1000)."
    )
    array_parallelism: int = Field(64, ge=1, description="Array tasks running at once.")
    max_requeues: int = Field(3, ge=0, description="Requeues after timeout or preemption.")
    setup: list[str] = Field(
        default_factory=list, description="Shell lines run before each task (module load, …)."
    )
    additional: dict[str, Any] = Field(
        default_factory=dict, description="Extra sbatch parameters (e.g. constraint: a100)."
    )
    folder: str | None = Field(None, description="submitit logs (default <output>/slurm).")
