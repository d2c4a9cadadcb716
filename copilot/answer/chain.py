"""The retrieval chain: condense the follow-up, retrieve under the asker's scope, answer
from numbered sources, stream, and report exactly which sources were cited.

A chat model's tokens are passed on as they come. Text that exists in full (an extractive
answer, a notice) is passed on a word at a time at a reading pace (`reveal_words_per_second`),
so a reader sees it being written instead of a blob. Each source is announced (`on_source`)
as soon as the text first citing it has been passed on. Several models may be offered
(`alternatives`): each question names the one to answer with.

With a chat model, condensing and answering are LCEL chains (prompt | model). Without one
(the embedded default) a follow-up is resolved against the earlier questions
(`copilot.answer.follow_up`), and the extractive answerer quotes the best sentences with
their citations. Either way the top sources can get their neighbouring chunks
(`copilot.answer.context`).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from copilot.answer.about import LibrarySummary, answer_about, summarize_library, topic_of
from copilot.answer.citations import CitationNumbering, source_record
from copilot.answer.context import NeighbourContext
from copilot.answer.extractive import NOT_FOUND_TEXT, ExtractiveAnswerer
from copilot.answer.follow_up import Resolved, resolve_follow_up
from copilot.answer.prompts import ANSWER_PROMPT, CONDENSE_PROMPT, format_sources
from copilot.answer.providers import create_chat_model, model_choices, model_name
from copilot.search.ensemble import HybridSearch
from copilot.search.scope import AccessScope
from copilot.settings import Settings

OnToken = Callable[[str], Awaitable[None]]
#: Told each source record (`citations.source_record`) when the answer first cites it.
OnSource = Callable[[dict[str, Any]], Awaitable[None]]
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


async def _ignore_source(_: dict[str, Any]) -> None:
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
        alternatives: Mapping[str, BaseChatModel | None] | None = None,
        reveal_words_per_second: float = 0.0,
    ) -> None:
        self.search = search
        self.model = model
        self.model_name = model_name
        # Every model a question may name, the default first.
        self.models: dict[str, BaseChatModel | None] = {model_name: model, **(alternatives or {})}
        self.reveal_words_per_second = reveal_words_per_second
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
            alternatives={
                model_name(choice): create_chat_model(choice)
                for choice in model_choices(settings)[1:]
            },
            reveal_words_per_second=settings.answer_reveal_words_per_second,
        )

    @property
    def model_names(self) -> list[str]:
        """The models a question may name, the default first."""
        return list(self.models)

    async def answer(
        self,
        question: str,
        scope: AccessScope,
        history: Sequence[Turn] = (),
        on_token: OnToken = _ignore,
        permissions: frozenset[str] | None = None,
        *,
        on_source: OnSource = _ignore_source,
        model: str | None = None,
    ) -> AnswerResult:
        """`permissions` (the asker's, when known) shape answers about the assistant;
        `model` names one of `model_names` (None or an unknown name: the default)."""
        start = time.perf_counter()
        name = model if model in self.models else self.model_name
        chat_model = self.models[name]
        topic = topic_of(question) if self.library is not None else None
        if topic is not None and self.library is not None:
            text = answer_about(
                topic,
                await self.library(scope),
                permissions=permissions,
                generated=chat_model is not None,
                max_upload_mb=self.max_upload_mb,
            )
            await self._reveal(text, on_token)
            return AnswerResult(
                question=question,
                standalone_question=question,
                text=text,
                sources=[],
                cited=[],
                model=name,
                latency_ms=round((time.perf_counter() - start) * 1000),
            )
        history = list(history)[-self.history_turns :]
        timings: dict[str, float] = {}

        resolved = await self._standalone(question, history, scope, chat_model)
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

        async def cite(number: int, rank: int) -> None:
            await on_source(source_record(number, documents[rank - 1], True, rank))

        # Citations 1..n in order of first appearance; each source announced once cited.
        stream = numbering.stream(on_token, cite)
        usage: tuple[int | None, int | None]
        if resolved.notice:  # which earlier question the follow-up was taken to mean
            await self._reveal(resolved.notice, on_token)
        if not documents:
            text, usage = NOT_FOUND_TEXT, (None, None)
            await self._reveal(text, stream)
        elif chat_model is None:
            text, _, usage = await self._extractive(resolved, documents, stream)
        else:
            text, usage = await self._generate(chat_model, question, history, documents, stream)
        await stream.close()
        text = numbering.rewrite(text)
        timings["generate"] = (time.perf_counter() - generation_start) * 1000

        return AnswerResult(
            question=question,
            standalone_question=standalone,
            text=resolved.notice + text,
            sources=numbering.records(documents),
            cited=list(range(1, len(numbering.order) + 1)),
            model=name,
            prompt_tokens=usage[0],
            completion_tokens=usage[1],
            latency_ms=round((time.perf_counter() - start) * 1000),
            timings_ms={k: round(v, 1) for k, v in timings.items()},
            missing_engines=report.missing,
        )

    async def _standalone(
        self,
        question: str,
        history: list[Turn],
        scope: AccessScope,
        chat_model: BaseChatModel | None,
    ) -> Resolved:
        previous = [t.content for t in history if t.role == "user"]
        if not previous:
            return Resolved(question, question)
        if chat_model is None:
            # No model to rewrite a follow-up: resolve it against the earlier questions. A
            # question that stands on its own is searched alone (no topic bleed).
            async def retrieve(query: str) -> list[Document]:
                documents = (await self.search.search(query, scope, k=3))[0]
                if self.locate is not None and documents:  # superseded chunks dropped
                    documents = await self.locate(documents)
                return documents

            return await resolve_follow_up(question, previous, retrieve)
        chain = CONDENSE_PROMPT | chat_model | StrOutputParser()
        rewritten = await chain.ainvoke({"history": _messages(history), "question": question})
        return Resolved(rewritten.strip() or question, question)

    async def _extractive(
        self, resolved: Resolved, documents: list[Document], on_token: OnToken
    ) -> tuple[str, list[int], tuple[int | None, int | None]]:
        topic = resolved.topic if resolved.referent else ""  # only a follow-up has one
        result = await self.extractive.aanswer(
            resolved.question, documents, topic=topic, aspect=resolved.aspect
        )
        for part in result.parts:  # sentence by sentence, as composed
            await self._reveal(part, on_token)
        return result.text, list(result.cited), (None, len(result.text.split()))

    async def _generate(
        self,
        chat_model: BaseChatModel,
        question: str,
        history: list[Turn],
        documents: list[Document],
        on_token: OnToken,
    ) -> tuple[str, tuple[int | None, int | None]]:
        chain = ANSWER_PROMPT | chat_model
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

    async def _reveal(self, text: str, on_token: OnToken) -> None:
        """Send text that exists in full as word-sized tokens, as a model would: at
        `reveal_words_per_second` (0: all at once)."""
        pace = self.reveal_words_per_second
        start = time.monotonic()
        for count, piece in enumerate(_PIECES.findall(text), 1):
            await on_token(piece)
            if pace > 0:
                # Against the start, not the last word: slow consumers do not add up.
                await asyncio.sleep(max(0.0, start + count / pace - time.monotonic()))


def _messages(history: list[Turn]) -> list[BaseMessage]:
    return [HumanMessage(t.content) if t.role == "user" else AIMessage(t.content) for t in history]
