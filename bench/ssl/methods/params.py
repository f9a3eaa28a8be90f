"""Parameter models of the built-in methods (pydantic only: suites validate without torch).

Each method file uses its model here as ``Params``; the registry in :mod:`bench.ssl.methods`
pairs each name with its model, so that ``stages.<name>.params`` is validated (and shrunk by the
``smoke`` profile) without importing the method, or torch.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class MethodParams(BaseModel):
    """Base of a method's parameters; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def smoke(cls, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` (a raw mapping) with every MLP (a :class:`ProjectorSpec` field) made 64
        wide at its depth (the given one, else the default's): the ``smoke`` profile's settings,
        read from the model so that a new method needs no entry anywhere else."""
        out = dict(params)
        for name, info in cls.model_fields.items():
            if info.annotation is not ProjectorSpec:
                continue
            given = out.get(name) if isinstance(out.get(name), dict) else {}
            dims = given.get("dims") if isinstance(given.get("dims"), list) else None
            depth = len(dims) if dims is not None else len(info.get_default(
                call_default_factory=True).dims)
            out[name] = {**given, "dims": [64] * depth}
        return out


class ProjectorSpec(BaseModel):
    """An MLP projector: Linear → [BN] → ReLU … → Linear (last layer: no BN, no ReLU)."""

    model_config = ConfigDict(extra="forbid")
    dims: list[int] = Field(default_factory=lambda: [8192, 8192, 8192], min_length=1)
    batch_norm: bool = True
    bias: bool = True


class BarlowTwinsParams(MethodParams):
    """Barlow Twins settings (defaults: the paper's)."""

    projector: ProjectorSpec = Field(default_factory=ProjectorSpec)
    lambda_offdiag: float = Field(1 / 8192, gt=0, description="Weight of off-diagonal terms.")
    sparse_head: float = Field(0.0, ge=0, description="Coefficient of the L2,1 head penalty.")


class VICRegParams(MethodParams):
    """VICReg settings (defaults: the paper's)."""

    projector: ProjectorSpec = Field(default_factory=ProjectorSpec)
    sim_coeff: float = Field(25.0, ge=0, description="Invariance weight.")
    std_coeff: float = Field(25.0, ge=0, description="Variance weight.")
    cov_coeff: float = Field(1.0, ge=0, description="Covariance weight.")
    eps: float = Field(1e-4, gt=0, description="Added to the variance before the square root.")


class SimCLRParams(MethodParams):
    """SimCLR settings."""

    projector: ProjectorSpec = Field(
        default_factory=lambda: ProjectorSpec(dims=[2048, 128], batch_norm=True))
    temperature: float = Field(0.1, gt=0, description="τ of NT-Xent.")


class BYOLParams(MethodParams):
    """BYOL settings (defaults: the paper's)."""

    projector: ProjectorSpec = Field(default_factory=lambda: ProjectorSpec(dims=[4096, 256]))
    predictor: ProjectorSpec = Field(default_factory=lambda: ProjectorSpec(dims=[4096, 256]))
    momentum: float = Field(0.996, ge=0, le=1, description="τ_base of the EMA target.")


class SupervisedParams(MethodParams):
    """Supervised pre-training settings."""

    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Cross-entropy label smoothing.")
