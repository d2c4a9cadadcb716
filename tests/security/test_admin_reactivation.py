"""Reactivating a user ends every session that outlived their deactivation (one done while
Redis was unreachable leaves the sessions in Redis), so no old sign-in comes back."""

from __future__ import annotations

import uuid

from sqlalchemy import update

from copilot.db.models import User
from copilot.web import runtime as web_runtime
from tests.security._admin_support import Admin, admin

__all__ = ["admin"]


def _signed_in(admin: Admin, who: str) -> bool:
    """/files/{id} of no file: 404 for a standing sign-in, 401 for one that ended."""
    status = admin.as_(who).get(f"/files/{uuid.uuid4()}").status_code
    assert status in (401, 404)
    return status == 404


def test_reactivation_ends_sessions_that_outlived_the_deactivation(admin: Admin) -> None:
    alice = uuid.UUID(admin.data.alice.user_id)

    async def deactivate_without_redis() -> None:
        async with web_runtime.current().sessions() as session:
            await session.execute(update(User).where(User.id == alice).values(is_active=False))
            await session.commit()

    assert _signed_in(admin, "alice")
    admin.run(deactivate_without_redis)
    assert not _signed_in(admin, "alice")  # the account check refuses meanwhile
    reactivated = admin.post("super_admin", f"/admin/users/{alice}/activate")
    assert reactivated.status_code == 303
    assert not _signed_in(admin, "alice"), "the sign-in from before the deactivation came back"
