"""Sign-ins, refused sign-ins and sign-outs are written to the audit log, with the account
the email names (if any), the method, the reason and the client address."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from copilot.db.models import AuditLog
from copilot.knowledge.embeddings import LocalMiniLM
from copilot.settings import Settings
from tests.security._auth_support import PASSWORD, LiveApp, live_app


async def _entries(live: LiveApp) -> list[tuple[str, str | None, dict[str, object], str | None]]:
    async with live.runtime.sessions() as session:
        rows = await session.execute(
            select(AuditLog.action, AuditLog.actor_id, AuditLog.details, AuditLog.ip)
            .where(AuditLog.action.startswith("auth."))
            .order_by(AuditLog.created_at, AuditLog.id)
        )
        return [(a, str(actor) if actor else None, d, ip) for a, actor, d, ip in rows.all()]


async def test_account_events_are_audited(
    database_settings: Settings, embeddings: LocalMiniLM
) -> None:
    async with live_app(database_settings, embeddings) as live:
        ann = await live.account("ann", role="Regular User", department="ENG")
        async with httpx.AsyncClient(base_url=live.url, timeout=30) as http:
            for email, password in (
                (ann.email, "wrong password"),
                ("nobody@example.com", PASSWORD),
                ("x\x00" + "y" * 600, PASSWORD),  # hostile input must not break the record
            ):
                refused = await http.post(
                    "/chat/login", data={"username": email, "password": password}
                )
                assert refused.status_code == 401
            signed_in = await http.post(
                "/chat/login", data={"username": ann.email, "password": PASSWORD}
            )
            assert signed_in.status_code == 200
            assert (await http.post("/chat/logout")).status_code == 200
        entries = await _entries(live)
    assert [(action, actor) for action, actor, _, _ in entries] == [
        ("auth.sign_in_refused", ann.user_id),
        ("auth.sign_in_refused", None),
        ("auth.sign_in_refused", None),
        ("auth.sign_in", ann.user_id),
        ("auth.sign_out", ann.user_id),
    ]
    assert entries[0][2] == {"email": ann.email, "method": "password", "reason": "credentials"}
    assert entries[1][2]["email"] == "nobody@example.com"
    assert entries[2][2]["email"] == ("x" + "y" * 600)[:255]
    assert all(ip == "127.0.0.1" for _, _, _, ip in entries)
