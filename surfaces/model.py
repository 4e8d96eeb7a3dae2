"""Model variants for the digits benchmarks (8x8 grey images, 10 classes).

The server rebuilds ``Net(arch, seed)`` from its constructor arguments, so both are stored as attributes
and the weights are seeded inside ``__init__``: every process builds the same initial model.
"""

from __future__ import annotations

import torch
from torch import nn

ARCHS = ("mlp", "mlp_wide", "mlp_deep", "cnn_small")


def _layers(arch: str) -> nn.Sequential:
    if arch == "mlp":
        return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    if arch == "mlp_wide":
        return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    if arch == "mlp_deep":
        return nn.Sequential(
            nn.Linear(64, 48),
            nn.ReLU(),
            nn.Linear(48, 48),
            nn.ReLU(),
            nn.Linear(48, 48),
            nn.ReLU(),
            nn.Linear(48, 10),
        )
    if arch == "cnn_small":
        return nn.Sequential(
            nn.Unflatten(1, (1, 8, 8)),
            nn.Conv2d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * 2 * 2, 10),
        )
    raise ValueError(f"unknown arch {arch!r}; expected one of {ARCHS}")


class Net(nn.Module):
    def __init__(self, arch: str = "mlp", seed: int = 0):
        super().__init__()
        self.arch = arch
        self.seed = seed
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.body = _layers(arch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
