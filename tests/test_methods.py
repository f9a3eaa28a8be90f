"""VICReg, SimCLR and BYOL against reference formulas written out here, and a user method."""

from __future__ import annotations

import math

import pytest
import torch

from bench.models.registry import seeded_backbone
from bench.ssl.methods import METHODS, resolve_method
from bench.ssl.methods.byol import BYOL, BYOLParams, byol_loss
from bench.ssl.methods.simclr import nt_xent
from bench.ssl.methods.vicreg import vicreg_loss


def _pair(b: int = 10, d: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, d, generator=g, dtype=torch.float64),
            torch.randn(b, d, generator=g, dtype=torch.float64))


def test_vicreg_matches_reference() -> None:
    z1, z2 = _pair()
    b, d = z1.shape

    def var_term(z):
        out = 0.0
        for j in range(d):
            col = z[:, j]
            var = float(((col - col.mean()) ** 2).sum() / (b - 1))
            out += max(0.0, 1 - math.sqrt(var + 1e-4))
        return out / d

    def cov_term(z):
        zc = z - z.mean(0)
        total = 0.0
        for i in range(d):
            for j in range(d):
                if i != j:
                    total += float((zc[:, i] * zc[:, j]).sum() / (b - 1)) ** 2
        return total / d

    inv = float(((z1 - z2) ** 2).mean())
    expected = 25 * inv + 25 * (var_term(z1) + var_term(z2)) / 2 + cov_term(z1) + cov_term(z2)
    assert float(vicreg_loss(z1, z2)) == pytest.approx(expected, rel=1e-9)


def test_nt_xent_matches_reference() -> None:
    z1, z2 = _pair(b=5, d=4, seed=1)
    t = 0.3
    z = torch.cat([z1, z2])
    z = z / z.norm(dim=1, keepdim=True)
    n = z.shape[0]
    total = 0.0
    for i in range(n):
        pos = (i + n // 2) % n
        num = math.exp(float(z[i] @ z[pos]) / t)
        den = sum(math.exp(float(z[i] @ z[k]) / t) for k in range(n) if k != i)
        total += -math.log(num / den)
    assert float(nt_xent(z1, z2, t)) == pytest.approx(total / n, rel=1e-9)


def test_byol_loss_and_ema() -> None:
    p, z = _pair(b=4, d=3, seed=2)
    expected = sum(2 - 2 * float(p[i] @ z[i] / (p[i].norm() * z[i].norm())) for i in range(4)) / 4
    assert float(byol_loss(p, z)) == pytest.approx(expected, rel=1e-9)
    enc = seeded_backbone("tiny_resnet_w8", 0)
    m = BYOL(64, BYOLParams.model_validate({"projector": {"dims": [16, 8]},
                                            "predictor": {"dims": [16, 8]}}))
    m.bind(enc, total_steps=10)
    assert m.tau() == pytest.approx(0.996)
    before = [t.clone() for t in m.target_encoder.parameters()]
    with torch.no_grad():
        for q in enc.parameters():
            q.add_(1.0)
    m.after_step(enc)
    for b0, t, o in zip(before, m.target_encoder.parameters(), enc.parameters(), strict=True):
        assert torch.allclose(t, 0.996 * b0 + 0.004 * o)
    m.step.fill_(10)
    assert m.tau() == pytest.approx(1.0)
    assert not any(p.requires_grad for p in m.target_encoder.parameters())


@pytest.mark.parametrize("name", ["vicreg", "simclr", "byol"])
def test_method_loss_decreases_in_20_steps(name: str) -> None:
    torch.manual_seed(0)
    cls = resolve_method(name)
    small = {"projector": {"dims": [32, 16]}}
    if name == "byol":
        small["predictor"] = {"dims": [32, 16]}
    encoder = seeded_backbone("tiny_resnet_w8", 0)
    method = cls(encoder.feature_dim, cls.Params.model_validate(small), None)
    method.bind(encoder, 20)
    x = torch.rand(16, 3, 16, 16)
    views = [x, (x + 0.05 * torch.randn_like(x)).clamp(0, 1)]
    params = [p for p in [*encoder.parameters(), *method.parameters()] if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-3)
    losses = []
    for _ in range(20):
        loss = method.loss(encoder, views, None)
        opt.zero_grad()
        loss.backward()
        opt.step()
        method.after_step(encoder)
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]


def test_registry_and_user_method_path() -> None:
    assert set(METHODS) >= {"barlow_twins", "vicreg", "simclr", "byol", "supervised"}
    assert resolve_method("bench.ssl.methods.simclr:SimCLR") is resolve_method("simclr")
