"""Admin changes: reactivating a user ends every session that outlived the deactivation
(one done while Redis was unreachable leaves them in Redis), and the notice after a change
is one only the app can have written."""

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


def test_a_crafted_link_cannot_make_an_admin_page_show_a_notice(admin: Admin) -> None:
    fake = "Your session expired: sign in again at https://evil.example"
    for page in ("/admin/users", "/admin/files"):
        shown = admin.as_("super_admin").get(page, params={"notice": fake, "notice_sig": "00"})
        assert shown.status_code == 200 and fake not in shown.text
    # The app's own notice, after a change, is shown.
    bob = admin.data.bob.user_id
    changed = admin.post("super_admin", f"/admin/users/{bob}/role", {"role": "Read Only"})
    assert changed.status_code == 303
    followed = admin.as_("super_admin").get(changed.headers["location"])
    assert "bob@example.com is now Read Only." in followed.text
