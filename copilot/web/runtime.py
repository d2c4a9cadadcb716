"""What the web handlers share for the life of the process: the services, opened at start.

`copilot serve` builds one `Runtime` and installs it before Chainlit loads `app.py`;
handlers call `current()`. It is the composition root's `Services` (copilot.services)
with the web's rule on failure: nothing connects at import or build time, Redis and the
knowledge base open when the app starts, and a knowledge base that cannot open is kept as
`startup_error` (shown by /healthz and the chat) instead of the app refusing to start.
"""

from __future__ import annotations

import asyncio
import logging
import time

from copilot.answer.chain import AnswerChain
from copilot.knowledge.jobs import IngestionQueue
from copilot.knowledge.knowledge_base import KnowledgeBase
from copilot.services import Services
from copilot.settings import Settings

log = logging.getLogger(__name__)


class Runtime(Services):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.startup_error: str | None = None

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        return cls(settings)

    async def start(self) -> None:
        """Open Redis and the knowledge base, build the chain and load the embedding model
        before the first question. A Redis that cannot start stops the app; any other
        failure is kept, not raised."""
        started = time.perf_counter()
        await self.open_redis()
        redis_ready = time.perf_counter()
        try:
            kb = await self.open_knowledge()
            self.chain  # noqa: B018 (built now: a missing chat model shows at start-up)
            knowledge_ready = time.perf_counter()
            await asyncio.to_thread(kb.embeddings.embed_query, "warm up")
            await self.start_ingestion()  # uploads, in the background; resumes a crash's
            await self.start_sync_schedule()  # data sources, when an interval is set
        except Exception as error:
            log.exception("the knowledge base could not be opened")
            self.startup_error = f"{type(error).__name__}: {error}"
            return
        log.info(
            "started in %.1f s: redis %.1f s, knowledge base and chain %.1f s, warm-up %.1f s",
            time.perf_counter() - started,
            redis_ready - started,
            knowledge_ready - redis_ready,
            time.perf_counter() - knowledge_ready,
        )

    @property
    def kb(self) -> KnowledgeBase:
        if self._kb is None:
            raise RuntimeError(f"Copilot is not ready: {self.startup_error or 'starting up'}")
        return self._kb

    @property
    def chain(self) -> AnswerChain:
        if self._chain is None and self._kb is None:
            raise RuntimeError(f"Copilot is not ready: {self.startup_error or 'starting up'}")
        return super().chain

    @chain.setter
    def chain(self, chain: AnswerChain) -> None:
        self._chain = chain

    @property
    def ingestion(self) -> IngestionQueue:
        if self._ingestion is None:
            raise RuntimeError(f"Copilot is not ready: {self.startup_error or 'starting up'}")
        return self._ingestion

    async def close(self) -> None:
        """Stop the ingestion queue, then close the rest (the embedded Redis server too,
        whatever stopping the queue raised: see Services.aclose)."""
        await self.aclose()


_current: Runtime | None = None


def install(runtime: Runtime) -> None:
    global _current
    _current = runtime


def current() -> Runtime:
    if _current is None:
        raise RuntimeError("the web runtime is not installed; start the app with copilot serve")
    return _current
