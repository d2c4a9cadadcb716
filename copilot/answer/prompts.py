"""The prompts: condensing a follow-up, and answering from numbered sources."""

from __future__ import annotations

from langchain_core.documents import Document
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder

from copilot.answer.citations import place, source_label

CONDENSE_PROMPT = ChatPromptTemplate.from_messages(
    [
        (
            "system",
            "Rewrite the user's last question as a standalone question that can be understood "
            "without the conversation. Keep names, numbers and terms. Reply with the question "
            "only.",
        ),
        MessagesPlaceholder("history"),
        ("human", "{question}"),
    ]
)

ANSWER_PROMPT = ChatPromptTemplate.from_messages(
    [
        (
            "system",
            "You are Copilot, the company's internal assistant. Answer the question using ONLY "
            "the numbered sources below. After every sentence that uses a source, cite it as "
            "[1], [2], ... by its number. Never cite a number that is not listed. If the "
            "sources do not contain the answer, say that you could not find it in the "
            "knowledge available to the user, and do not guess. Be concise.\n\n"
            "Sources:\n{sources}",
        ),
        MessagesPlaceholder("history"),
        ("human", "{question}"),
    ]
)


def format_sources(documents: list[Document]) -> str:
    blocks = []
    for number, document in enumerate(documents, 1):
        metadata = document.metadata
        where = source_label(
            {
                "file_name": metadata.get("file_name", "unknown"),
                "page": metadata.get("page"),
                "place": place(
                    metadata.get("kind"), metadata.get("page"), metadata.get("location")
                ),
            }
        )
        blocks.append(f"[{number}] ({where})\n{document.page_content}")
    return "\n\n".join(blocks)
