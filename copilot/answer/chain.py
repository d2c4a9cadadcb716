"""The retrieval chain: condense the follow-up, retrieve under the asker's scope, answer
from numbered sources, stream, and report exactly which sources were cited.

With a chat model, condensing and answering are LCEL chains (prompt | model). Without one
(the embedded default) a follow-up is resolved against the earlier questions
(`copilot.answer.follow_up`), and the extractive answerer quotes the best sentences with
their citations. Either way the top sources can get their neighbouring chunks
(`copilot.answer.context`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from copilot.answer.about import LibrarySummary, answer_about, summarize_library, topic_of
from copilot.answer.citations import CitationNumbering
from copilot.answer.context import NeighbourContext
from copilot.answer.extractive import NOT_FOUND_TEXT, ExtractiveAnswerer
from copilot.answer.follow_up import Resolved, resolve_follow_up
from copilot.answer.prompts import ANSWER_PROMPT, CONDENSE_PROMPT, format_sources
from copilot.answer.providers import create_chat_model, model_name
from copilot.search.ensemble import HybridSearch
from copilot.search.scope import AccessScope
from copilot.settings import Settings

OnToken = Callable[[str], Awaitable[None]]
Library = Callable[[AccessScope], Awaitable[LibrarySummary]]
#: Adds to retrieved documents where each chunk is (`copilot.knowledge.locations`).
Locate = Callable[[list[Document]], Awaitable[list[Document]]]
_PIECES = re.compile(r"\S+\s*|\s+")


class SearchUnavailable(RuntimeError):
    """Every search engine failed: "nothing found" would be a wrong answer."""


@dataclass
class Turn:
    """One earlier message of the conversation."""

    role: str  # "user" or "assistant"
    content: str


@dataclass
class AnswerResult:
    question: str
    standalone_question: str
    text: str
    sources: list[dict[str, Any]]  # every retrieved source, with "cited" set
    cited: list[int]
    model: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)
    missing_engines: dict[str, str] = field(default_factory=dict)

    @property
    def cited_sources(self) -> list[dict[str, Any]]:
        return [s for s in self.sources if s["cited"]]


async def _ignore(_: str) -> None:
    return None


class AnswerChain:
    def __init__(
        self,
        search: HybridSearch,
        *,
        model: BaseChatModel | None,
        model_name: str,
        extractive: ExtractiveAnswerer,
        history_turns: int = 6,
        library: Library | None = None,
        max_upload_mb: int = 50,
        locate: Locate | None = None,
        context: NeighbourContext | None = None,
    ) -> None:
        self.search = search
        self.model = model
        self.model_name = model_name
        self.extractive = extractive
        self.history_turns = history_turns
        # What the asker can search, for questions about the assistant itself (`about`).
        self.library = library
        self.max_upload_mb = max_upload_mb
        self.locate = locate
        self.context = context

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        search: HybridSearch,
        embeddings: Embeddings,
        *,
        sessions: async_sessionmaker[AsyncSession] | None = None,
        locate: Locate | None = None,
    ) -> AnswerChain:
        """The chain with the configured model (or the extractive answerer when none);
        with `sessions` it also answers questions about itself from the asker's library,
        and the top sources get their neighbouring sentences as configured."""
        library: Library | None = None
        context = None
        if sessions is not None:

            async def library(scope: AccessScope) -> LibrarySummary:
                return await summarize_library(sessions, scope)

            if settings.answer_context_hits > 0:
                context = NeighbourContext(
                    sessions, settings.answer_context_hits, settings.answer_context_characters
                )
        return cls(
            search,
            model=create_chat_model(settings),
            model_name=model_name(settings),
            extractive=ExtractiveAnswerer(embeddings),
            library=library,
            max_upload_mb=settings.max_upload_mb,
            locate=locate,
            context=context,
        )

    async def answer(
        self,
        question: str,
        scope: AccessScope,
        history: Sequence[Turn] = (),
        on_token: OnToken = _ignore,
        permissions: frozenset[str] | None = None,
    ) -> AnswerResult:
        """`permissions` (the asker's, when known) shape answers about the assistant."""
        start = time.perf_counter()
        topic = topic_of(question) if self.library is not None else None
        if topic is not None and self.library is not None:
            text = answer_about(
                topic,
                await self.library(scope),
                permissions=permissions,
                generated=self.model is not None,
                max_upload_mb=self.max_upload_mb,
            )
            await _stream_text(text, on_token)
            return AnswerResult(
                question=question,
                standalone_question=question,
                text=text,
                sources=[],
                cited=[],
                model=self.model_name,
                latency_ms=round((time.perf_counter() - start) * 1000),
            )
        history = list(history)[-self.history_turns :]
        timings: dict[str, float] = {}

        resolved = await self._standalone(question, history, scope)
        standalone = resolved.question
        timings["condense"] = (time.perf_counter() - start) * 1000

        documents, report = await self.search.search(standalone, scope)
        timings.update({f"search_{k}": v for k, v in report.timings_ms.items()})
        if not documents and set(report.missing) >= set(self.search.engines):
            failures = "; ".join(f"{name}: {error}" for name, error in report.missing.items())
            raise SearchUnavailable(f"no search engine answered ({failures})")
        if self.locate is not None and documents:
            documents = await self.locate(documents)
        if self.context is not None and documents:
            context_start = time.perf_counter()
            documents = await self.context.expand(documents, scope)
            timings["context"] = (time.perf_counter() - context_start) * 1000

        generation_start = time.perf_counter()
        numbering = CitationNumbering(len(documents))
        stream = numbering.stream(on_token)  # citations 1..n in order of first appearance
        usage: tuple[int | None, int | None]
        if resolved.notice:  # which earlier question the follow-up was taken to mean
            await _stream_text(resolved.notice, on_token)
        if not documents:
            text, usage = NOT_FOUND_TEXT, (None, None)
            await _stream_text(text, stream)
        elif self.model is None:
            text, _, usage = await self._extractive(resolved, documents, stream)
        else:
            text, usage = await self._generate(question, history, documents, stream)
        await stream.close()
        text = numbering.rewrite(text)
        timings["generate"] = (time.perf_counter() - generation_start) * 1000

        return AnswerResult(
            question=question,
            standalone_question=standalone,
            text=resolved.notice + text,
            sources=numbering.records(documents),
            cited=list(range(1, len(numbering.order) + 1)),
            model=self.model_name,
            prompt_tokens=usage[0],
            completion_tokens=usage[1],
            latency_ms=round((time.perf_counter() - start) * 1000),
            timings_ms={k: round(v, 1) for k, v in timings.items()},
            missing_engines=report.missing,
        )

    async def _standalone(self, question: str, history: list[Turn], scope: AccessScope) -> Resolved:
        previous = [t.content for t in history if t.role == "user"]
        if not previous:
            return Resolved(question, question)
        if self.model is None:
            # No model to rewrite a follow-up: resolve it against the earlier questions. A
            # question that stands on its own is searched alone (no topic bleed).
            async def retrieve(query: str) -> list[Document]:
                return (await self.search.search(query, scope, k=3))[0]

            return await resolve_follow_up(question, previous, retrieve)
        chain = CONDENSE_PROMPT | self.model | StrOutputParser()
        rewritten = await chain.ainvoke({"history": _messages(history), "question": question})
        return Resolved(rewritten.strip() or question, question)

    async def _extractive(
        self, resolved: Resolved, documents: list[Document], on_token: OnToken
    ) -> tuple[str, list[int], tuple[int | None, int | None]]:
        topic = resolved.topic if resolved.referent else ""  # only a follow-up has one
        result = await self.extractive.aanswer(
            resolved.question, documents, topic=topic, aspect=resolved.aspect
        )
        await _stream_text(result.text, on_token)
        return result.text, list(result.cited), (None, len(result.text.split()))

    async def _generate(
        self, question: str, history: list[Turn], documents: list[Document], on_token: OnToken
    ) -> tuple[str, tuple[int | None, int | None]]:
        assert self.model is not None
        chain = ANSWER_PROMPT | self.model
        parts: list[str] = []
        usage: dict[str, int] = {}
        async for chunk in chain.astream(
            {
                "sources": format_sources(documents),
                "history": _messages(history),
                "question": question,
            }
        ):
            token = chunk.content if isinstance(chunk.content, str) else ""
            if token:
                parts.append(token)
                await on_token(token)
            if getattr(chunk, "usage_metadata", None):
                usage = dict(chunk.usage_metadata)  # type: ignore[arg-type]
        return "".join(parts), (usage.get("input_tokens"), usage.get("output_tokens"))


def _messages(history: list[Turn]) -> list[BaseMessage]:
    return [HumanMessage(t.content) if t.role == "user" else AIMessage(t.content) for t in history]


async def _stream_text(text: str, on_token: OnToken) -> None:
    """Send an answer that exists in full as word-sized tokens, as a model would."""
    for piece in _PIECES.findall(text):
        await on_token(piece)
