"""What the web handlers share for the life of the process: settings and connections.

`copilot serve` builds one `Runtime` and installs it before Chainlit loads `app.py`;
handlers call `current()`. Nothing connects at import time; the knowledge base (indexes,
embedding model) opens when the app starts.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from copilot.answer.chain import AnswerChain
from copilot.db.engine import create_engine, session_factory
from copilot.knowledge.jobs import IngestionQueue
from copilot.knowledge.knowledge_base import KnowledgeBase
from copilot.settings import Settings
from copilot.state.rate_limits import RateLimiter
from copilot.state.redis import RedisHandle, connect_redis
from copilot.state.sessions import SessionStore
from copilot.state.sign_in_throttle import SignInThrottle

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: RedisHandle
    session_store: SessionStore
    limiter: RateLimiter
    sign_in_throttle: SignInThrottle
    startup_error: str | None = None
    ingestion: IngestionQueue | None = None  # uploads, ingested in the background
    _kb: KnowledgeBase | None = field(default=None, repr=False)
    _chain: AnswerChain | None = field(default=None, repr=False)

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        engine = create_engine(settings)
        redis = connect_redis(settings)
        return cls(
            settings,
            engine,
            session_factory(engine),
            redis,
            SessionStore(redis.client, settings.session_ttl_seconds),
            RateLimiter.from_settings(redis.client, settings, settings.role_limits()),
            SignInThrottle(
                redis.client,
                max_failures_per_account=settings.sign_in_max_failures_per_account,
                max_failures_per_client=settings.sign_in_max_failures_per_client,
                window_seconds=settings.sign_in_window_seconds,
            ),
        )

    async def start(self) -> None:
        """Open the knowledge base and load the embedding model before the first question.

        A failure is kept, not raised: /healthz and the chat then say what is wrong
        instead of the whole app refusing to start.
        """
        try:
            self._kb = await KnowledgeBase.open(self.settings, self.sessions)
            self._chain = AnswerChain.from_settings(
                self.settings,
                self._kb.search,
                self._kb.embeddings,
                sessions=self.sessions,
                locate=self._kb.locations,
            )
            await asyncio.to_thread(self._kb.embeddings.embed_query, "warm up")
            self.ingestion = IngestionQueue(self._kb, self.settings.ingest_workers)
            await self.ingestion.start()  # resumes what a crash interrupted
        except Exception as error:
            log.exception("the knowledge base could not be opened")
            self.startup_error = f"{type(error).__name__}: {error}"

    @property
    def kb(self) -> KnowledgeBase:
        if self._kb is None:
            raise RuntimeError(f"Copilot is not ready: {self.startup_error or 'starting up'}")
        return self._kb

    @property
    def chain(self) -> AnswerChain:
        if self._chain is None:
            raise RuntimeError(f"Copilot is not ready: {self.startup_error or 'starting up'}")
        return self._chain

    async def close(self) -> None:
        if self.ingestion is not None:
            await self.ingestion.stop()
        if self._kb is not None:
            await self._kb.close()
        await self.redis.aclose()
        await self.engine.dispose()


_current: Runtime | None = None


def install(runtime: Runtime) -> None:
    global _current
    _current = runtime


def current() -> Runtime:
    if _current is None:
        raise RuntimeError("the web runtime is not installed; start the app with copilot serve")
    return _current
