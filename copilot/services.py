"""The composition root: every service Copilot runs on, built from settings alone.

The web app (`copilot.web.runtime`), the command line, the benches and `copilot health`
all get their database, Redis, embeddings, indexes, search, answer chain and limits from
here, so no other module chooses a backend or carries its own defaults.

`async with open_services(settings) as services:` owns the lifecycle of what it starts:
everything opened is closed on the way out, in reverse order, on every exit path (the
embedded Redis server included, see `copilot.state.redis`; the ingestion queue's workers
stop before the knowledge base closes). Parts open only when asked for (`open_redis()`,
`open_indexes()`, `open_knowledge()`, `start_ingestion()`), so a command that never
touches Redis does not start a Redis server. The knowledge base opens Redis: its index
generation is the Redis counter every process bumps and the query cache reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING

from copilot.db.engine import create_engine, session_factory
from copilot.knowledge.embeddings import EmbeddingProvider, create_embeddings
from copilot.knowledge.jobs import SWEEP_SECONDS, IngestionQueue, Recovered
from copilot.knowledge.knowledge_base import KnowledgeBase
from copilot.knowledge.sources.schedule import CHECK_SECONDS, SyncSchedule
from copilot.search.factory import SearchIndexes, open_indexes
from copilot.settings import Settings
from copilot.state.query_cache import IndexGeneration, QueryCache
from copilot.state.rate_limits import RateLimiter
from copilot.state.redis import RedisHandle, connect_redis
from copilot.state.sessions import SessionStore
from copilot.state.sign_in_throttle import SignInThrottle

if TYPE_CHECKING:
    from copilot.answer.chain import AnswerChain


class NotReady(RuntimeError):
    """A service was asked for before it was opened (or after opening it failed)."""


class Services:
    """What one process runs on. Cheap parts are built at once (the database engine does
    not connect until used, the embedding model loads on first use); Redis, the indexes
    and the knowledge base open when asked for, and `aclose()` closes all of it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stack = AsyncExitStack()
        self.engine = create_engine(settings)
        self._stack.push_async_callback(self.engine.dispose)
        self.sessions = session_factory(self.engine)
        self._redis: RedisHandle | None = None
        self._embeddings: EmbeddingProvider | None = None
        self._indexes: SearchIndexes | None = None
        self._opening_indexes = asyncio.Lock()
        self._kb: KnowledgeBase | None = None
        self._chain: AnswerChain | None = None
        self._ingestion: IngestionQueue | None = None
        self._sync_schedule: SyncSchedule | None = None

    # --- Redis and what lives in it --------------------------------------------------

    async def open_redis(self) -> RedisHandle:
        """The configured Redis, or the embedded one started under the data dir."""
        if self._redis is None:
            handle = await asyncio.to_thread(connect_redis, self.settings)
            self._stack.push_async_callback(handle.aclose)
            self._redis = handle
        return self._redis

    @property
    def redis(self) -> RedisHandle:
        if self._redis is None:
            raise NotReady("Redis is not open: await services.open_redis() first")
        return self._redis

    @cached_property
    def session_store(self) -> SessionStore:
        return SessionStore(self.redis.client, self.settings.session_ttl_seconds)

    @cached_property
    def limiter(self) -> RateLimiter:
        return RateLimiter.from_settings(self.redis.client, self.settings)

    @cached_property
    def sign_in_throttle(self) -> SignInThrottle:
        return SignInThrottle(
            self.redis.client,
            max_failures_per_account=self.settings.sign_in_max_failures_per_account,
            max_failures_per_client=self.settings.sign_in_max_failures_per_client,
            window_seconds=self.settings.sign_in_window_seconds,
        )

    # --- Knowledge: embeddings, both indexes, hybrid search, the chain ---------------

    @property
    def embeddings(self) -> EmbeddingProvider:
        """The configured embedding model (a local one loads its weights on first use)."""
        if self._embeddings is None:
            self._embeddings = create_embeddings(self.settings)
        return self._embeddings

    async def open_indexes(self) -> SearchIndexes:
        """The keyword and vector indexes the settings name (opened in a thread: the
        embedded engines' imports and files take a moment)."""
        async with self._opening_indexes:
            if self._indexes is None:
                dimension = self.embeddings.info.dimension
                indexes = await asyncio.to_thread(open_indexes, self.settings, dimension)
                self._stack.push_async_callback(indexes.close)
                self._indexes = indexes
        return self._indexes

    @property
    def indexes(self) -> SearchIndexes:
        if self._indexes is None:
            raise NotReady("the indexes are not open: await services.open_indexes() first")
        return self._indexes

    async def open_knowledge(
        self, *, embeddings: EmbeddingProvider | None = None, allow_model_change: bool = False
    ) -> KnowledgeBase:
        """The knowledge base over the database and both indexes, with the shared index
        generation (in Redis, opened if need be) and, unless turned off, the query cache.
        `embeddings` replaces the configured model (the benches record or cache vectors
        through it)."""
        if self._kb is None:
            if embeddings is not None:
                self._embeddings = embeddings
            redis = (await self.open_redis()).client
            self._kb = await KnowledgeBase.open(
                self.settings,
                self.sessions,
                embeddings=self.embeddings,
                indexes=await self.open_indexes(),
                allow_model_change=allow_model_change,
                generation=IndexGeneration(redis),
                cache=self.query_cache,
            )
        return self._kb

    @cached_property
    def query_cache(self) -> QueryCache | None:
        """Retrieval results in Redis (None when `query_cache` is off)."""
        if not self.settings.query_cache:
            return None
        return QueryCache(self.redis.client, self.settings.query_cache_ttl_seconds)

    @property
    def kb(self) -> KnowledgeBase:
        if self._kb is None:
            raise NotReady("the knowledge base is not open: await open_knowledge() first")
        return self._kb

    @property
    def chain(self) -> AnswerChain:
        """The answer chain over the knowledge base, with the configured chat model."""
        if self._chain is None:
            from copilot.answer.chain import AnswerChain

            kb = self.kb
            self._chain = AnswerChain.from_settings(
                self.settings, kb.search, kb.embeddings, sessions=self.sessions, locate=kb.locations
            )
        return self._chain

    @chain.setter
    def chain(self, chain: AnswerChain) -> None:
        """Benches and tests answer with a chain of their own (a fake model)."""
        self._chain = chain

    # --- Ingestion in the background ---------------------------------------------------

    async def start_ingestion(self, *, sweep_seconds: float | None = SWEEP_SECONDS) -> Recovered:
        """Start the ingestion queue's workers over the knowledge base (opened if need be),
        after recovering what a crash interrupted; they stop when the services close, before
        the knowledge base does. `sweep_seconds=None`: no periodic look for waiting files
        (a command that ends when its own files are in)."""
        if self._ingestion is not None:
            raise RuntimeError("the ingestion queue is running already")
        kb = await self.open_knowledge()
        queue = IngestionQueue(kb, self.settings.ingest_workers, sweep_seconds=sweep_seconds)
        recovered = await queue.start()
        self._stack.push_async_callback(queue.stop)
        self._ingestion = queue
        return recovered

    async def start_sync_schedule(self, *, check_seconds: float = CHECK_SECONDS) -> bool:
        """Sync the data sources every `sources_sync_interval_minutes` in the background
        (stopped when the services close, before the knowledge base); False when off."""
        minutes = self.settings.sources_sync_interval_minutes
        if not minutes:
            return False
        if self._sync_schedule is not None:
            raise RuntimeError("the sync schedule is running already")
        schedule = SyncSchedule(
            await self.open_knowledge(), timedelta(minutes=minutes), check_seconds=check_seconds
        )
        schedule.start()
        self._stack.push_async_callback(schedule.stop)
        self._sync_schedule = schedule
        return True

    @property
    def ingesting(self) -> bool:
        """Whether the ingestion queue runs (start_ingestion() succeeded)."""
        return self._ingestion is not None

    @property
    def ingestion(self) -> IngestionQueue:
        if self._ingestion is None:
            raise NotReady("the ingestion queue is not running: await start_ingestion() first")
        return self._ingestion

    async def aclose(self) -> None:
        """Close everything opened, last opened first."""
        await self._stack.aclose()


@asynccontextmanager
async def open_services(
    settings: Settings,
    *,
    redis: bool = False,
    knowledge: bool = False,
    ingestion: bool = False,
    embeddings: EmbeddingProvider | None = None,
    allow_model_change: bool = False,
) -> AsyncIterator[Services]:
    """The services, with Redis, the knowledge base and the ingestion queue started up front
    if asked; all of it stopped and closed on the way out, whatever happens inside."""
    services = Services(settings)
    try:
        if redis:
            await services.open_redis()
        if knowledge:
            await services.open_knowledge(
                embeddings=embeddings, allow_model_change=allow_model_change
            )
        if ingestion:
            await services.start_ingestion()
        yield services
    finally:
        await services.aclose()
