"""`copilot bench chat`: how much the chat itself adds to an answer, under concurrent users.

The real app (FastAPI + Chainlit, sign-in, Redis sessions and rate limits, the database,
hybrid retrieval over the embedded indexes) runs in this process on a scratch data dir; only
the chat model is replaced by a fake that streams a fixed ~40-token answer at once. So the
figures are the app's overhead, not a model's speed: time to first token covers everything
between the question leaving the browser and the first token arriving (session and limit
checks, condensing, query embedding, both searches, persistence, socket.io).

The simulated users run in a child process (`python -m copilot.bench.chat`), so the load
generator's own socket.io work does not compete with the server for this event loop.
With `--ingest FILE`, the same load runs again while the server's own ingestion queue
ingests the file (copilot.bench.ingesting), and the report holds both runs.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from copilot.bench.chat_client import ChatSession, sign_in
from copilot.bench.ingesting import (
    BackgroundIngestion,
    IngestionUnderLoad,
    NewOwner,
    measure_under_ingestion,
)
from copilot.bench.metrics import percentile
from copilot.bench.serving import serving

if TYPE_CHECKING:
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from copilot.settings import Settings

Say = Callable[[str], None]

TARGET_TTFT_P95_MS = 150.0
TARGET_USERS = 50
FAKE_MODEL_NAME = "fake-streaming (bench)"
#: The fake model's answer: 40 words, citing the first source.
FAKE_ANSWER = (
    "Hotel costs are reimbursed up to 180 euros per night in Europe, and economy class is "
    "the default for flights under six hours [1]. Book both through the travel portal, keep "
    "your receipts, and ask your manager before you travel [1]."
)
QUESTIONS = (
    "How much are hotel costs reimbursed per night?",
    "Which class do I fly for short trips?",
    "Where do I book flights?",
    "Who orders replacement laptops?",
    "How long does a replacement laptop take?",
)
BENCH_DOCUMENT = """# Travel policy

Employees book flights through the travel portal. Economy class is the default for flights
under six hours. Hotel costs are reimbursed up to 180 euros per night in Europe.

# Equipment

Every engineer receives a laptop on the first day. Replacement laptops are ordered through
the IT helpdesk and arrive within five working days.
"""
BENCH_PASSWORD = "bench-password-1"


@dataclass
class Sample:
    """One question as a simulated user saw it."""

    ttft_ms: float | None
    total_ms: float
    tokens: int
    error: str | None = None


@dataclass
class ChatBenchReport:
    users: int
    messages_per_user: int
    messages: int
    errors: int
    ttft_p50_ms: float
    ttft_p95_ms: float
    answer_p50_ms: float
    answer_p95_ms: float
    messages_per_second: float
    frames_per_answer: float  # streamed updates per answer (tokens are sent in frames)
    seconds: float
    think_seconds: float = 0.0
    cpus: int = 0
    load_average_before: float = 0.0  # other work on the machine skews every figure
    target_ttft_p95_ms: float = TARGET_TTFT_P95_MS
    target_users: int = TARGET_USERS
    model: str = FAKE_MODEL_NAME
    note: str = "app overhead only: the chat model is a fake that streams a fixed answer instantly"
    error_examples: list[str] = field(default_factory=list)
    #: The same load again while files were being ingested (`--ingest`), and the ingestion.
    while_ingesting: ChatBenchReport | None = None
    ingestion: IngestionUnderLoad | None = None

    @property
    def target_met(self) -> bool | None:
        """None when the run had fewer concurrent users than the target names. The target
        holds while ingesting when the run had an ingestion."""
        if self.while_ingesting is not None:
            return self.while_ingesting.target_met
        if self.users < self.target_users:
            return None
        return self.errors == 0 and self.ttft_p95_ms <= self.target_ttft_p95_ms

    def ratios(self) -> dict[str, float]:
        """While ingesting / without, for first token p50 and p95 and the answer's p95."""
        if self.while_ingesting is None:
            return {}
        loaded = self.while_ingesting
        pairs = {
            "ttft_p50": (loaded.ttft_p50_ms, self.ttft_p50_ms),
            "ttft_p95": (loaded.ttft_p95_ms, self.ttft_p95_ms),
            "answer_p95": (loaded.answer_p95_ms, self.answer_p95_ms),
        }
        return {name: round(a / b, 2) if b else float("nan") for name, (a, b) in pairs.items()}

    def as_dict(self) -> dict[str, object]:
        figures = {
            k: v for k, v in asdict(self).items() if k not in ("while_ingesting", "ingestion")
        }
        if self.while_ingesting is not None and self.ingestion is not None:
            figures["while_ingesting"] = self.while_ingesting.as_dict()
            figures["ingestion"] = self.ingestion.as_dict()
            figures["ratios"] = self.ratios()
        return {**figures, "target_met": self.target_met}


def fake_streaming_model(answer: str = FAKE_ANSWER) -> GenericFakeChatModel:
    """LangChain's GenericFakeChatModel, answering `answer` to every question, instantly.

    Its default async streaming hands each token to a worker thread; at 50 concurrent chats
    that measures the thread pool, so tokens are yielded in the event loop instead. A
    follow-up's condensing call gets the question back (a perfect, free rewrite).
    """
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage, BaseMessage

    from copilot.answer.prompts import CONDENSE_PROMPT

    condense_instruction = CONDENSE_PROMPT.format_messages(history=[], question="")[0].content

    class InstantFakeChatModel(GenericFakeChatModel):
        def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
            if messages and messages[0].content == condense_instruction:
                return _echo(messages)
            return super()._generate(messages, *args, **kwargs)

        async def _agenerate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
            return self._generate(messages, *args, **kwargs)

        async def _astream(  # type: ignore[override]
            self, messages: list[BaseMessage], stop: list[str] | None = None, *_: Any, **__: Any
        ) -> AsyncIterator[Any]:
            for chunk in self._stream(messages, stop):
                yield chunk

    def _echo(messages: list[BaseMessage]) -> Any:
        from langchain_core.outputs import ChatGeneration, ChatResult

        question = str(messages[-1].content)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(question))])

    return InstantFakeChatModel(messages=itertools.repeat(AIMessage(answer)))


# --- The simulated users (run in a child process) -----------------------------------------


@dataclass(frozen=True)
class LoadPlan:
    """Who asks what: sent to the child process as JSON."""

    base_url: str
    emails: list[str]
    password: str
    messages_per_user: int
    think_seconds: float = 0.0  # mean pause after an answer before the next question


#: Sign-ins verify an Argon2 hash, which takes the server ~0.1-0.4 s of CPU each: a few at
#: a time, so none of them times out behind the others.
SIGN_INS_AT_ONCE = 4


@dataclass(frozen=True)
class LoadRun:
    """The samples of one load, and when its asking began (epoch s) and how long it took."""

    samples: list[Sample]
    seconds: float
    started_at: float = 0.0

    @property
    def ended_at(self) -> float:
        return self.started_at + self.seconds


async def simulate_users(plan: LoadPlan) -> LoadRun:
    """Every user signs in and connects, then all start asking, each waiting for the full
    answer (and `think_seconds`) before the next question. Without think time all start
    at the same moment."""
    gate = asyncio.Semaphore(SIGN_INS_AT_ONCE)

    async def signed_in(email: str) -> ChatSession:
        async with gate:
            credentials = await sign_in(plan.base_url, email, plan.password)
        return ChatSession(plan.base_url, credentials)

    sessions = await asyncio.gather(*(signed_in(e) for e in plan.emails))
    await asyncio.gather(*(s.connect() for s in sessions))
    started_at, start = time.time(), time.perf_counter()
    try:
        per_user = await asyncio.gather(
            *(_ask_in_turn(s, plan, number) for number, s in enumerate(sessions))
        )
    finally:
        seconds = time.perf_counter() - start
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
    return LoadRun([sample for samples in per_user for sample in samples], seconds, started_at)


async def _ask_in_turn(chat: ChatSession, plan: LoadPlan, user_number: int) -> list[Sample]:
    pauses = random.Random(user_number)  # the same pauses on every run
    samples: list[Sample] = []
    for number in range(plan.messages_per_user):
        if plan.think_seconds:
            # Readers don't press Enter in step: the first question comes at a random
            # moment of the first think time, the next ones after reading the answer.
            spread = (0.0, 1.0) if number == 0 else (0.5, 1.5)
            await asyncio.sleep(plan.think_seconds * pauses.uniform(*spread))
        question = QUESTIONS[(user_number + number) % len(QUESTIONS)]
        started = time.perf_counter()
        try:
            reply = await chat.ask(question)
        except Exception as failure:  # a failed question is a figure, not a crash
            elapsed_ms = (time.perf_counter() - started) * 1000
            samples.append(Sample(None, elapsed_ms, 0, _describe(failure)))
            continue
        ttft = reply.time_to_first_token
        streamed = "".join(reply.tokens)
        wrong = None if streamed == FAKE_ANSWER else f"unexpected reply: {reply.text[:120]!r}"
        samples.append(
            Sample(
                ttft * 1000 if ttft is not None else None,
                reply.duration * 1000,
                reply.token_count,
                wrong,
            )
        )
    return samples


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:200]


async def _load_from_subprocess(plan: LoadPlan) -> LoadRun:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "copilot.bench.chat",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate(json.dumps(asdict(plan)).encode())
    if process.returncode != 0:
        raise RuntimeError(f"the simulated users failed:\n{stderr.decode()[-2000:]}")
    result = json.loads(stdout)
    samples = [Sample(**s) for s in result["samples"]]
    return LoadRun(samples, float(result["seconds"]), float(result["started_at"]))


def _child_main() -> None:
    """Entry point of the child process: a LoadPlan as JSON on stdin, samples on stdout."""
    plan = LoadPlan(**json.loads(sys.stdin.read()))
    json.dump(asdict(asyncio.run(simulate_users(plan))), sys.stdout)


# --- The run ---------------------------------------------------------------------------------


async def run_chat_bench(
    settings: Settings,
    *,
    users: int = TARGET_USERS,
    messages: int = 5,
    think_seconds: float = 0.0,
    ingest: Sequence[Path] = (),
    say: Say = print,
) -> ChatBenchReport:
    """Start the app on a scratch data dir, simulate `users` chats of `messages` questions.

    With no think time every user asks again as soon as an answer ends: the harshest load
    50 chats can put on the server. `think_seconds` models reading the answer first.
    With `ingest` files, the same load runs a second time while the app's ingestion queue
    ingests them (see copilot.bench.ingesting), after ingesting them once with no load.
    """
    with tempfile.TemporaryDirectory(prefix="copilot-chat-bench-") as scratch:
        bench_settings = settings.model_copy(
            update={
                "data_dir": Path(scratch),
                "database_url": "",
                "redis_url": "",
                "elasticsearch_url": "",
                "weaviate_url": "",
                "jwt_secret": "",
                "auth_header": "",
                # The limits protect a real service; here they would only refuse the load.
                "rate_limit_per_minute": max(settings.rate_limit_per_minute, 10 * messages),
                "daily_message_quota": max(settings.daily_message_quota, 10 * messages),
                "daily_token_quota": max(settings.daily_token_quota, 10_000_000),
                "rate_limits_by_role": {},
            }
        )
        return await _run(bench_settings, users, messages, think_seconds, ingest, say)


async def _run(
    settings: Settings,
    users: int,
    messages: int,
    think_seconds: float,
    ingest: Sequence[Path],
    say: Say,
) -> ChatBenchReport:
    from copilot.answer.chain import AnswerChain
    from copilot.answer.extractive import ExtractiveAnswerer
    from copilot.db import migrate
    from copilot.web import runtime
    from copilot.web.server import create_app

    migrate.upgrade(settings)
    emails, owner_id = await _create_users(settings, users)
    say(f"created {users} users; starting the app")
    app = create_app(settings)
    async with serving(app) as base_url:
        live = runtime.current()
        live.chain = AnswerChain(
            live.kb.search,
            model=fake_streaming_model(),
            model_name=FAKE_MODEL_NAME,
            extractive=ExtractiveAnswerer(live.kb.embeddings),
            locate=live.kb.locations,
        )
        await _ingest_document(live.kb, settings.data_dir, owner_id)
        say(f"app at {base_url}; warming up")
        await simulate_users(LoadPlan(base_url, emails[:1], BENCH_PASSWORD, 2))
        plan = LoadPlan(base_url, emails, BENCH_PASSWORD, messages, think_seconds)
        say(f"{users} users x {messages} messages...")
        report = await _measure(plan)
        if ingest:
            background = BackgroundIngestion(live.ingestion, ingest, _owners(live.sessions))
            say(f"ingesting {', '.join(p.name for p in ingest)} with no chat load...")
            alone = await background.ingest_once()
            say(f"again, while {users} users x {messages} messages ask...")
            loaded: list[ChatBenchReport] = []

            async def load() -> tuple[float, float]:
                measured, window = await _measure_window(plan)
                loaded.append(measured)
                return window

            report.ingestion = await measure_under_ingestion(background, alone, load)
            report.while_ingesting = loaded[0]
    return report


async def _measure(plan: LoadPlan) -> ChatBenchReport:
    return (await _measure_window(plan))[0]


async def _measure_window(plan: LoadPlan) -> tuple[ChatBenchReport, tuple[float, float]]:
    """One load from the child process: its figures, and its window (epoch s)."""
    load_before = os.getloadavg()[0]
    run = await _load_from_subprocess(plan)
    report = _report(len(plan.emails), plan.messages_per_user, run.samples, run.seconds)
    report.think_seconds = plan.think_seconds
    report.cpus = os.cpu_count() or 0
    report.load_average_before = round(load_before, 2)
    return report, (run.started_at, run.ended_at)


def _owners(sessions: async_sessionmaker[AsyncSession]) -> NewOwner:
    """A new regular user for each background ingestion round."""
    from copilot import users

    async def new_owner() -> uuid.UUID:
        async with sessions() as session:
            user = await users.create_user(
                session,
                f"bench-uploader-{uuid.uuid4().hex[:8]}@example.com",
                display_name="Bench uploader",
                password=None,
                role="Regular User",
                department="ENG",
            )
            await session.commit()
            return user.id

    return new_owner


async def _create_users(settings: Settings, count: int) -> tuple[list[str], uuid.UUID]:
    """`count` regular users sharing one password hash (hashing is slow on purpose)."""
    from copilot import users
    from copilot.bench.people import seed_bench_owner
    from copilot.services import open_services

    async with open_services(settings) as services, services.sessions() as session:
        owner = await seed_bench_owner(session, "bench-owner@example.com", "Bench owner")
        shared_hash = users.hash_password(BENCH_PASSWORD)
        emails = [f"bench-user-{n:03d}@example.com" for n in range(count)]
        for email in emails:
            user = await users.create_user(
                session,
                email,
                display_name=email.split("@")[0],
                password=None,
                role="Regular User",
                department="ENG",
            )
            user.password_hash = shared_hash
        await session.commit()
        return emails, owner.id


async def _ingest_document(kb: Any, folder: Path, owner_id: uuid.UUID) -> None:
    from copilot.knowledge.ingest import Ownership, ingest_file

    path = folder / "travel-and-equipment.md"
    path.write_text(BENCH_DOCUMENT, encoding="utf-8")
    result = await ingest_file(kb, path, Ownership(owner_id, scope="company"))
    if result.outcome != "indexed":
        raise RuntimeError(f"the bench document was not indexed: {result.summary}")


def _report(users: int, messages: int, samples: list[Sample], seconds: float) -> ChatBenchReport:
    answered = [s for s in samples if s.error is None]
    ttfts = [s.ttft_ms for s in answered if s.ttft_ms is not None]
    totals = [s.total_ms for s in answered]
    failed = [s for s in samples if s.error is not None]
    return ChatBenchReport(
        users=users,
        messages_per_user=messages,
        messages=len(samples),
        errors=len(failed),
        ttft_p50_ms=round(percentile(ttfts, 50), 1) if ttfts else float("nan"),
        ttft_p95_ms=round(percentile(ttfts, 95), 1) if ttfts else float("nan"),
        answer_p50_ms=round(percentile(totals, 50), 1) if totals else float("nan"),
        answer_p95_ms=round(percentile(totals, 95), 1) if totals else float("nan"),
        messages_per_second=round(len(answered) / seconds, 1) if seconds else 0.0,
        frames_per_answer=round(sum(s.tokens for s in answered) / len(answered), 1)
        if answered
        else 0.0,
        seconds=round(seconds, 2),
        error_examples=sorted({s.error for s in failed if s.error})[:5],
    )


if __name__ == "__main__":
    _child_main()
