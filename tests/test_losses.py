"""Barlow Twins loss and sparse-head term against independent plain implementations."""

from __future__ import annotations

import pytest
import torch

from bench.models.registry import seeded_backbone
from bench.ssl.methods import resolve_method
from bench.ssl.methods.barlow_twins import (
    BarlowTwins,
    BarlowTwinsParams,
    barlow_twins_loss,
    column_l21,
)
from bench.ssl.methods.base import ProjectorSpec


def _reference_bt(z1: torch.Tensor, z2: torch.Tensor, lam: float) -> float:
    """Barlow Twins written with explicit loops over dimensions (float64)."""
    z1, z2 = z1.double(), z2.double()
    b, d = z1.shape
    a = (z1 - z1.mean(0)) / z1.std(0, unbiased=False)
    c = (z2 - z2.mean(0)) / z2.std(0, unbiased=False)
    total = 0.0
    for i in range(d):
        for j in range(d):
            cij = float(sum(a[k, i] * c[k, j] for k in range(b)) / b)
            total += (1 - cij) ** 2 if i == j else lam * cij**2
    return total


def test_barlow_twins_matches_reference() -> None:
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(12, 6, generator=g), torch.randn(12, 6, generator=g)
    got = float(barlow_twins_loss(z1.double(), z2.double(), 1 / 8192))
    assert got == pytest.approx(_reference_bt(z1, z2, 1 / 8192), rel=1e-6, abs=1e-6)


def test_identical_views_give_zero_on_diagonal() -> None:
    z = torch.randn(32, 8, dtype=torch.float64)
    # with λ = tiny, only the diagonal counts: identical views have C_ii = 1 exactly
    assert float(barlow_twins_loss(z, z, 1e-30)) == pytest.approx(0.0, abs=1e-10)


def test_paper_lambda_is_the_default() -> None:
    p = BarlowTwinsParams()
    assert p.lambda_offdiag == 1 / 8192
    assert p.projector.dims == [8192, 8192, 8192]


def test_sparse_term_is_the_sum_of_column_norms() -> None:
    w = torch.randn(5, 7, dtype=torch.float64)
    expected = sum(float(torch.sqrt((w[:, j] ** 2).sum())) for j in range(7))
    assert float(column_l21(w)) == pytest.approx(expected, rel=1e-12)
    # not the element-wise L1 norm
    assert float(column_l21(w)) != pytest.approx(float(w.abs().sum()))
    params = BarlowTwinsParams(projector=ProjectorSpec(dims=[16, 16, 16]), sparse_head=0.01)
    method = BarlowTwins(8, params)
    last = method.last_linear()
    assert last is method.projector[-1]
    with torch.no_grad():
        assert float(method.extra_loss()) == pytest.approx(0.01 * float(column_l21(last.weight)))


def test_projector_layout_follows_the_paper() -> None:
    method = BarlowTwins(2048, BarlowTwinsParams())
    kinds = [type(m).__name__ for m in method.projector]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d", "ReLU", "Linear"]
    n = sum(p.numel() for p in method.projector.parameters())
    assert 150e6 < n < 152e6  # "about 151 M parameters"
    assert all(float(m.bias.detach().abs().sum()) == 0 for m in method.projector
               if isinstance(m, torch.nn.Linear))


@pytest.mark.parametrize("name", ["barlow_twins", "supervised"])
def test_each_method_loss_decreases_in_20_steps(name: str) -> None:
    torch.manual_seed(0)
    cls = resolve_method(name)
    params = cls.Params.model_validate(
        {"projector": {"dims": [32, 32]}} if name == "barlow_twins" else {})
    encoder = seeded_backbone("tiny_resnet_w8", 0)
    method = cls(encoder.feature_dim, params, 3)
    x = torch.rand(16, 3, 16, 16)
    y = torch.randint(0, 3, (16,))
    views = [x, (x + 0.05 * torch.randn_like(x)).clamp(0, 1)]
    opt = torch.optim.Adam([*encoder.parameters(), *method.parameters()], lr=1e-3)
    losses = []
    for _ in range(20):
        loss = method.loss(encoder, views, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
