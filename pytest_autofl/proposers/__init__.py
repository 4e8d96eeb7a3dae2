"""The proposer family (``base``: the interface and the registry), the built-in member, the LLM member
(``llm``: any OpenAI-compatible endpoint), and candidate files (``candidate_file``, with strict ``patching``):
candidates written by people or coding agents."""

from typing import Any

from pytest_autofl.proposers.base import PROPOSERS, ProposerSetup
from pytest_autofl.proposers.builtin import BuiltinProposer


def _llm(setup: ProposerSetup) -> Any:
    """The LLM proposer, imported when chosen (the openai package is not imported otherwise)."""
    from pytest_autofl.proposers.llm import LLMProposer

    return LLMProposer(setup)


def _optuna(setup: ProposerSetup) -> Any:
    """Optuna's samplers, imported when chosen (optuna is not imported otherwise)."""
    from pytest_autofl.proposers.optuna_study import OptunaProposer

    return OptunaProposer(setup)


def _hybrid(setup: ProposerSetup) -> Any:
    """The calibration walk, then an Optuna sampler (optuna imported when chosen)."""
    from pytest_autofl.proposers.hybrid import HybridProposer

    return HybridProposer(setup)


PROPOSERS.register("builtin", BuiltinProposer)
PROPOSERS.register("optuna", _optuna)
PROPOSERS.register("hybrid", _hybrid)
PROPOSERS.register("llm", _llm)
