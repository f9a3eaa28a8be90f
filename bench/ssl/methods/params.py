"""Parameter models of the built-in methods (pydantic only: suites validate without torch).

Each method file uses its model here as ``Params``; :data:`BUILTIN_PARAMS` lets the suite checker
validate ``stages.<name>.params`` without importing the method (and torch).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MethodParams(BaseModel):
    """Base of a method's parameters; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


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


BUILTIN_PARAMS: dict[str, type[MethodParams]] = {
    "barlow_twins": BarlowTwinsParams,
    "vicreg": VICRegParams,
    "simclr": SimCLRParams,
    "byol": BYOLParams,
    "supervised": SupervisedParams,
}
