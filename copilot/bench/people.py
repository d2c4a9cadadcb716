"""Who the benches act as, in their scratch databases: one helper, so each bench's owner is
seeded alike (the default roles and departments, then a Super Admin)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from copilot import users
from copilot.db.models import User
from copilot.db.seed import seed_defaults


async def seed_bench_owner(
    session: AsyncSession, email: str = "bench@example.com", display_name: str = "Bench"
) -> User:
    """Seed the defaults and create the Super Admin (of ADM, no password) that owns the
    bench's company knowledge and asks as the one who may read all of it."""
    await seed_defaults(session)
    return await users.create_user(
        session,
        email,
        display_name=display_name,
        password=None,
        role="Super Admin",
        department="ADM",
    )
