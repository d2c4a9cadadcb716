"""Chainlit handlers: sign-in against the users table, and the chat itself."""

from __future__ import annotations

import chainlit as cl

from copilot import users
from copilot.web.runtime import current


@cl.password_auth_callback
async def password_sign_in(email: str, password: str) -> cl.User | None:
    async with current().sessions() as session:
        user = await users.authenticate(session, email, password)
        if user is None:
            return None
        principal = users.principal_of(user)
    return cl.User(
        identifier=principal.email,
        display_name=principal.display_name,
        metadata={"user_id": principal.user_id, "roles": sorted(principal.roles)},
    )


@cl.on_chat_start
async def greet() -> None:
    user = cl.user_session.get("user")
    name = user.display_name if user else "there"
    await cl.Message(content=f"Hello {name}. Ask me anything about company knowledge.").send()
