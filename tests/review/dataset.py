"""A small, known set of conversations for the admin tests: every filter has a right answer.

ENG: alice (3 chats), bob (1 chat, with an upload notice); FIN: carol (1 chat).
Reviewers: a Super Admin (ADM), an ENG Department Admin, a FIN Department Admin; alice,
bob and carol are regular users who may not review. Two more people have no chats: a Read
Only user (ENG) and a Super Admin who sits in ENG (whom the ENG admin must not change).
The files the answers cite exist (company files, internal), so reviewers may read them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from copilot import users
from copilot.db.models import Chat, Feedback, File, Message
from copilot.users import Principal

DAY = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def source(number: int, file_name: str, page: int | None, cited: bool) -> dict[str, Any]:
    return {
        "number": number,
        "cited": cited,
        "chunk_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{file_name}#{number}")),
        "file_id": str(uuid.uuid5(uuid.NAMESPACE_URL, file_name)),
        "file_name": file_name,
        "page": page,
        "score": 0.03 / number,
        "snippet": f"A passage of {file_name} about travel and hotels.",
    }


#: The files the seeded answers cite: company knowledge every reviewer may read.
CITED_FILES = ("policy.pdf", "faq.md", "it-handbook.docx", "budget.xlsx")


def cited_file(
    file_name: str,
    owner: Principal,
    *,
    scope: str = "company",
    classification: str = "internal",
    department_id: str | None = None,
) -> File:
    """The file a `source(...)` of the same name points at (same id)."""
    return File(
        id=uuid.uuid5(uuid.NAMESPACE_URL, file_name),
        owner_id=uuid.UUID(owner.user_id),
        original_name=file_name,
        mime_type="application/octet-stream",
        size_bytes=100,
        sha256=uuid.uuid5(uuid.NAMESPACE_DNS, file_name).hex * 2,
        scope=scope,
        department_id=uuid.UUID(department_id) if department_id else None,
        classification=classification,
        status="ready",
    )


@dataclass
class Dataset:
    super_admin: Principal
    eng_admin: Principal
    fin_admin: Principal
    alice: Principal  # ENG
    bob: Principal  # ENG
    carol: Principal  # FIN
    reader: Principal  # ENG, Read Only
    eng_super: Principal  # ENG, Super Admin
    travel: uuid.UUID  # alice, thumbs down with a comment, cites policy.pdf p3
    laptop: uuid.UUID  # alice, thumbs up
    broken: uuid.UUID  # alice, answer failed with an error, no feedback
    bob_chat: uuid.UUID  # bob, an answer with no sources, no feedback
    carol_chat: uuid.UUID  # carol (FIN), thumbs down, cites budget.xlsx

    @property
    def eng_chats(self) -> set[uuid.UUID]:
        return {self.travel, self.laptop, self.broken, self.bob_chat}

    @property
    def all_chats(self) -> set[uuid.UUID]:
        return self.eng_chats | {self.carol_chat}


PASSWORD = "correct horse battery staple"


async def seed_conversations(session: AsyncSession, *, passwords: bool = False) -> Dataset:
    async def person(name: str, role: str, department: str) -> Principal:
        user = await users.create_user(
            session,
            f"{name}@example.com",
            display_name=name.replace("_", " ").title(),
            password=PASSWORD if passwords else None,
            role=role,
            department=department,
        )
        return users.principal_of(user)

    people = {
        "super_admin": await person("super_admin", "Super Admin", "ADM"),
        "eng_admin": await person("eng_admin", "Department Admin", "ENG"),
        "fin_admin": await person("fin_admin", "Department Admin", "FIN"),
        "alice": await person("alice", "Regular User", "ENG"),
        "bob": await person("bob", "Regular User", "ENG"),
        "carol": await person("carol", "Regular User", "FIN"),
        "reader": await person("reader", "Read Only", "ENG"),
        "eng_super": await person("eng_super", "Super Admin", "ENG"),
    }
    for name in CITED_FILES:
        session.add(cited_file(name, people["super_admin"]))
    await session.flush()

    async def chat(
        owner: Principal, title: str, start: datetime, turns: list[dict[str, Any]]
    ) -> uuid.UUID:
        chat = Chat(user_id=uuid.UUID(owner.user_id), title=title, created_at=start)
        session.add(chat)
        await session.flush()
        moment = start
        for turn in turns:
            moment += timedelta(minutes=1)
            question = Message(chat_id=chat.id, role="user", content=turn["q"], created_at=moment)
            moment += timedelta(seconds=5)
            answer = Message(
                chat_id=chat.id,
                role="assistant",
                content=turn.get("a", ""),
                sources=turn.get("sources", []),
                model="extractive",
                latency_ms=turn.get("latency", 400),
                completion_tokens=len(turn.get("a", "").split()),
                error=turn.get("error"),
                created_at=moment,
            )
            session.add_all([question, answer])
            await session.flush()
            if "feedback" in turn:
                session.add(
                    Feedback(
                        message_id=answer.id,
                        chat_id=chat.id,
                        user_id=uuid.UUID(owner.user_id),
                        value=turn["feedback"],
                        comment=turn.get("comment"),
                        created_at=moment + timedelta(minutes=1),
                        updated_at=moment + timedelta(minutes=1),
                    )
                )
        chat.updated_at = moment
        await session.flush()
        return chat.id

    travel = await chat(
        people["alice"],
        "Hotel reimbursement",
        DAY,
        [
            {
                "q": "How much are hotels reimbursed per night?",
                "a": "Hotels are reimbursed up to 180 euros per night [1].",
                "sources": [source(1, "policy.pdf", 3, True), source(2, "faq.md", None, False)],
                "feedback": -1,
                "comment": "It is 200 euros in Paris",
                "latency": 300,
            },
            {
                "q": "And in Paris?",
                "a": "Paris has the same limit [1].",
                "sources": [source(1, "policy.pdf", 3, True)],
            },
        ],
    )
    laptop = await chat(
        people["alice"],
        "Laptop replacement",
        DAY + timedelta(days=1),
        [
            {
                "q": "Who orders replacement laptops?",
                "a": "The IT desk orders them [1].",
                "sources": [source(1, "it-handbook.docx", 2, True)],
                "feedback": 1,
                "latency": 500,
            }
        ],
    )
    broken = await chat(
        people["alice"],
        "Expense deadline",
        DAY + timedelta(days=2),
        [{"q": "When are expense reports due?", "a": "", "error": "model endpoint timed out"}],
    )
    bob_chat = await chat(
        people["bob"],
        "Parking",
        DAY + timedelta(days=3),
        [
            {
                "q": "Where can visitors park?",
                "a": "I couldn't find this.",
                "sources": [source(1, "faq.md", None, False)],  # retrieved, not cited
                "latency": 600,
            }
        ],
    )
    # The chat also shows notices as the assistant (an upload's confirmation): no model.
    session.add(
        Message(
            chat_id=bob_chat,
            role="assistant",
            content="indexed parking.pdf: 2 pages, 3 chunks.",
            created_at=DAY + timedelta(days=3, minutes=5),
        )
    )
    carol_chat = await chat(
        people["carol"],
        "Budget",
        DAY + timedelta(days=4),
        [
            {
                "q": "What is the travel budget for 2027?",
                "a": "The travel budget is 1.2 million [1].",
                "sources": [source(1, "budget.xlsx", None, True)],
                "feedback": -1,
                "latency": 700,
            }
        ],
    )
    await session.commit()
    return Dataset(
        **people,
        travel=travel,
        laptop=laptop,
        broken=broken,
        bob_chat=bob_chat,
        carol_chat=carol_chat,
    )
