"""pytest-autofl: federated-learning research as controlled experiments, run as pytest tests on NVIDIA FLARE."""

__version__ = "0.1.0"
