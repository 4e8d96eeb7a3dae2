"""Model variants. The harness passes the data's shape: ``in_features`` (the flattened input size) and
``num_classes``; ``cnn_small`` convolves an 8x8 grey image (64 inputs: the digits benchmarks) and runs 1-D
over any other feature vector (tabular data).

The server rebuilds ``Net(arch, seed, in_features, num_classes)`` from its constructor arguments, so they are
stored as attributes and the weights are seeded inside ``__init__``: every process builds the same model.
"""

from __future__ import annotations

import torch
from torch import nn

ARCHS = ("mlp", "mlp_wide", "mlp_deep", "cnn_small")


def _layers(arch: str, n_in: int, n_out: int) -> nn.Sequential:
    if arch == "mlp":
        return nn.Sequential(
            nn.Linear(n_in, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, n_out)
        )
    if arch == "mlp_wide":
        return nn.Sequential(nn.Linear(n_in, 128), nn.ReLU(), nn.Linear(128, n_out))
    if arch == "mlp_deep":
        return nn.Sequential(
            nn.Linear(n_in, 48),
            nn.ReLU(),
            nn.Linear(48, 48),
            nn.ReLU(),
            nn.Linear(48, 48),
            nn.ReLU(),
            nn.Linear(48, n_out),
        )
    if arch == "cnn_small" and n_in != 64:
        return nn.Sequential(
            nn.Unflatten(1, (1, n_in)),
            nn.Conv1d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool1d(4),
            nn.Flatten(),
            nn.Linear(16 * 4, n_out),
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
            nn.Linear(16 * 2 * 2, n_out),
        )
    raise ValueError(f"unknown arch {arch!r}; expected one of {ARCHS}")


class Net(nn.Module):
    def __init__(self, arch: str = "mlp", seed: int = 0, in_features: int = 64, num_classes: int = 10):
        super().__init__()
        self.arch = arch
        self.seed = seed
        self.in_features = in_features
        self.num_classes = num_classes
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.body = _layers(arch, in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
