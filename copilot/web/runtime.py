"""What the web handlers share for the life of the process: settings and connections.

`copilot serve` builds one `Runtime` and installs it before Chainlit loads `app.py`;
handlers call `current()`. Nothing connects at import time.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from copilot.db.engine import create_engine, session_factory
from copilot.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        engine = create_engine(settings)
        return cls(settings, engine, session_factory(engine))

    async def close(self) -> None:
        await self.engine.dispose()


_current: Runtime | None = None


def install(runtime: Runtime) -> None:
    global _current
    _current = runtime


def current() -> Runtime:
    if _current is None:
        raise RuntimeError("the web runtime is not installed; start the app with copilot serve")
    return _current
