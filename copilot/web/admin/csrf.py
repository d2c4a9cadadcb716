"""CSRF tokens for the admin's forms: a synchronizer token bound to the sign-in.

The token is an HMAC (keyed with the app's signing secret) of the sign-in's Redis session
id, so it needs no cookie or server-side store, differs per sign-in, and ends with the
session (logout, deactivation). Every page puts it in its forms; every admin POST must
send it back. The libraries on offer (asgi-csrf, starlette-csrf, fastapi-csrf-protect)
implement the double-submit cookie, which ties the token to a cookie of its own rather
than to the sign-in, and would wrap the Chainlit app's own POSTs too.
"""

from __future__ import annotations

import hashlib
import hmac

from chainlit.auth.jwt import decode_jwt

from copilot.web.runtime import current
from copilot.web.secrets import jwt_secret

FIELD = "csrf_token"
HEADER = "x-csrf-token"


def csrf_token(sign_in_token: str) -> str:
    """The token for this sign-in (the chat's signed cookie or bearer token)."""
    try:
        session_id = str(decode_jwt(sign_in_token).metadata.get("session_id", ""))
    except Exception:
        session_id = ""
    # A sign-in without a session (Redis was down) is bound to its own signed token.
    bound_to = f"session:{session_id}" if session_id else f"token:{sign_in_token}"
    key = jwt_secret(current().settings).encode()
    return hmac.new(key, b"copilot-admin-csrf\0" + bound_to.encode(), hashlib.sha256).hexdigest()


def token_matches(sign_in_token: str, sent: str) -> bool:
    return bool(sent) and hmac.compare_digest(csrf_token(sign_in_token), sent)
