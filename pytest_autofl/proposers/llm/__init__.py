"""``--autofl-proposer llm``: a model behind any OpenAI-compatible endpoint proposes each candidate.

One conversation per candidate (``prompt``: what the model sees). An answer that does not validate
(``answer``: JSON, knobs in bounds, exact SEARCH/REPLACE edits, the candidate-file checks) or that repeats a
tried candidate gets a repair turn with the precise error, at most ``REPAIRS``; then the proposal is rejected
and recorded as an ``invalid`` row. Nothing the model wrote runs unless it validated, and then only in the
sandbox, like any candidate. Calls and tokens are capped per session; the key never leaves the client.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from pytest_autofl.core.candidate import Candidate, ProposalCost
from pytest_autofl.core.errors import AutoFLError, ProposalRejected, ProposerStopped, ProposerUnavailable
from pytest_autofl.proposers.base import CampaignView, LLMSettings, ProposerSetup
from pytest_autofl.proposers.llm.answer import AnswerError, parse, to_candidate
from pytest_autofl.proposers.llm.prompt import messages

REPAIRS = 2


def endpoint_problems(settings: LLMSettings, environ: Mapping[str, str]) -> list[str]:
    """What keeps the proposer from asking anyone (for ``--autofl-check``); never shows the key."""
    out = [] if settings.model else ["no model: --autofl-llm-model NAME (ini autofl_llm_model)"]
    if not environ.get("OPENAI_API_KEY"):
        out.append("OPENAI_API_KEY is not set (any value for a local server)")
    return out


class LLMProposer:
    def __init__(self, setup: ProposerSetup):
        import openai

        if problems := endpoint_problems(setup.options.llm, os.environ):
            raise AutoFLError("--autofl-proposer llm: " + "; ".join(problems))
        try:  # base URL and key from OPENAI_BASE_URL and OPENAI_API_KEY, as the openai package reads them
            self.client = openai.OpenAI(
                timeout=setup.options.llm.timeout, max_retries=setup.options.llm.retries
            )
        except openai.OpenAIError as exc:
            raise AutoFLError(
                f"--autofl-proposer llm: {exc} (set OPENAI_API_KEY, any value for a local server, and "
                "OPENAI_BASE_URL, e.g. http://127.0.0.1:8000/v1)"
            ) from None
        self.openai = openai
        self.settings, self.program = setup.options.llm, setup.options.program.prose
        self.library = setup.options.library
        self.factory, self.surface_dir = setup.factory, setup.surface_dir or setup.rootdir / "surfaces"
        profile = setup.contract.profile_path
        self.profile = profile.read_text() if profile.is_file() else ""
        self.spent = ProposalCost()
        self.implements_cards = True  # a literature review's runs are the model's to implement
        self.json_mode = True  # asked for; dropped for a server that refuses it

    def tell(self, view: CampaignView, row: Any) -> None:
        """The verdict reaches the model through the ledger view of the next prompt."""

    def propose(self, view: CampaignView) -> Candidate:
        conversation = messages(view, self.program, self.profile, self.library)
        exchange: list[dict[str, Any]] = []
        cost = ProposalCost()
        for turn in range(REPAIRS + 1):
            content, finish, used = self._call(conversation)
            cost = _plus(cost, used)
            exchange.append(
                {
                    "answer": content,
                    "finish_reason": finish,
                    "tokens_in": used.tokens_in,
                    "tokens_out": used.tokens_out,
                    "seconds": round(used.seconds, 3),
                }
            )
            try:
                candidate = self._validate(content, finish, view)
            except AnswerError as exc:
                exchange[-1]["rejected"] = str(exc)
                if turn == REPAIRS:
                    break
                conversation = [
                    *conversation,
                    {"role": "assistant", "content": content},
                    {
                        "role": "user",
                        "content": f"Rejected: {exc}. Answer again with one corrected JSON object.",
                    },
                ]
                continue
            return replace(candidate, cost=cost, transcript=_transcript(conversation, exchange))
        reason = f"llm proposal rejected after {REPAIRS} repair turn(s): {exchange[-1]['rejected']}"
        stand_in = Candidate(
            params={},
            family="rejected",
            description="llm proposal",
            proposer="llm",
            source="llm",
            cost=cost,
            transcript=_transcript(conversation, exchange),
        )
        raise ProposalRejected(reason, stand_in)

    def _validate(self, content: str, finish: str, view: CampaignView) -> Candidate:
        if finish == "length":
            raise AnswerError(
                "the answer was cut off at the token limit; answer shorter (fewer, smaller edits)"
            )
        candidate = to_candidate(parse(content), self.factory, self.surface_dir, view.surface)
        if candidate.key in view.tried():
            raise AnswerError(
                f"{candidate.id} ({candidate.description}) already ran or is running; propose something not yet tried"
            )
        return candidate

    def _call(self, conversation: list[dict[str, Any]]) -> tuple[str, str, ProposalCost]:
        """One chat completion: its text, finish reason and cost. Caps first; endpoint failures (after the
        client's retries) are ProposerUnavailable."""
        s, spent = self.settings, self.spent
        if spent.calls >= s.max_calls or spent.tokens_in + spent.tokens_out >= s.max_tokens:
            raise ProposerStopped(
                f"llm proposer: session cap reached ({spent.calls} calls of {s.max_calls}, "
                f"{spent.tokens_in + spent.tokens_out} tokens of {s.max_tokens}); no more proposals"
            )
        started = time.monotonic()
        try:
            response = self._create(conversation)
        except self.openai.APIError as exc:
            self.spent = _plus(spent, ProposalCost(calls=1, seconds=time.monotonic() - started))
            raise ProposerUnavailable(
                f"llm endpoint {self.client.base_url}: {type(exc).__name__}: {_short(exc)}"
            ) from None
        usage = response.usage
        used = ProposalCost(
            1,
            getattr(usage, "prompt_tokens", 0) or 0,
            getattr(usage, "completion_tokens", 0) or 0,
            time.monotonic() - started,
        )
        self.spent = _plus(spent, used)
        choice = response.choices[0]
        return choice.message.content or "", str(choice.finish_reason or ""), used

    def _create(self, conversation: list[dict[str, Any]]) -> Any:
        create = self.client.chat.completions.create
        kwargs: dict[str, Any] = {
            "model": self.settings.model,
            "messages": conversation,
            "max_tokens": self.settings.max_answer_tokens,
        }
        if self.json_mode:
            try:
                return create(**kwargs, response_format={"type": "json_object"})
            except self.openai.BadRequestError:  # a server without JSON mode: ask in words, parse the text
                self.json_mode = False
        return create(**kwargs)


def _plus(a: ProposalCost, b: ProposalCost) -> ProposalCost:
    return ProposalCost(
        a.calls + b.calls, a.tokens_in + b.tokens_in, a.tokens_out + b.tokens_out, a.seconds + b.seconds
    )


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:300]


def _transcript(conversation: list[dict[str, Any]], exchange: list[dict[str, Any]]) -> str:
    return json.dumps({"messages": conversation, "answers": exchange}, indent=1)
