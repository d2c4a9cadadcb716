"""Helpers for the chat's adversarial tests: accounts of any role, and a chat session that
sends what the browser could send (any step fields, file references, edits)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from copilot.bench.chat_client import ChatSession, Reply, Step, _Collector, sign_in
from tests.accounts import PASSWORD, make_account
from tests.web.test_chat import Account, LiveChat


async def account(
    live: LiveChat, name: str, role: str = "Regular User", department: str = "ENG"
) -> Account:
    """A fresh user with `role`, signed in through the chat's login form."""
    principal = await make_account(live.runtime.sessions, name, role=role, department=department)
    return Account(principal, await sign_in(live.url, principal.email, PASSWORD))


class RawChatSession(ChatSession):
    """A ChatSession that sends hand-made steps, file references and edits, and keeps
    every message the server sent (`seen`), asked for or not."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[Step] = []

    async def _on_message(self, step: Step) -> None:
        self.seen.append(step)
        await super()._on_message(step)

    async def said(self, text: str, timeout: float = 10.0) -> Step:
        """The first message seen whose output contains `text`, waiting for it."""
        deadline = time.monotonic() + timeout
        while True:
            for step in self.seen:
                if text in str(step.get("output") or ""):
                    return step
            if time.monotonic() > deadline:
                raise AssertionError(f"never said {text!r}: {self.seen}")
            await asyncio.sleep(0.05)

    async def send_step(
        self,
        text: str,
        *,
        metadata: dict[str, Any] | None = None,
        references: list[dict[str, Any]] | None = None,
        step_type: str = "user_message",
    ) -> Reply:
        question: Step = {
            "id": str(uuid.uuid4()),
            "threadId": "",
            "name": self.credentials.email,
            "type": step_type,
            "output": text,
            "createdAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "metadata": metadata or {},
        }
        return await self._exchange(
            "client_message",
            {"message": question, "fileReferences": references or []},
            question["id"],
        )

    async def edit(self, question_id: str, text: str) -> Reply:
        """Edit an earlier question as the UI's edit button does."""
        step: Step = {
            "id": question_id,
            "threadId": self.thread_id or "",
            "name": self.credentials.email,
            "type": "user_message",
            "output": text,
            "createdAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        return await self._exchange("edit_message", {"message": step}, question_id)

    async def _exchange(self, event: str, payload: dict[str, Any], question_id: str) -> Reply:
        collector = _Collector(sent_at=time.perf_counter())
        self._collector = collector
        try:
            await self._sio.emit(event, payload)
            await asyncio.wait_for(collector.done.wait(), self.timeout)
        finally:
            self._collector = None
        answers = [m for m in collector.messages.values() if m.get("type") == "assistant_message"]
        return Reply(
            text=str(answers[-1].get("output") or "") if answers else "",
            tokens=collector.tokens,
            time_to_first_token=None,
            duration=time.perf_counter() - collector.sent_at,
            messages=list(collector.messages.values()),
            elements=collector.elements,
            question_id=question_id,
        )


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []
