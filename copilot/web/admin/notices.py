"""Notices after a change ("Deleted handbook.pdf.") travel in the redirect's URL, signed:
a link someone else crafted cannot make an admin page say what the app never said."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from copilot.web.runtime import current
from copilot.web.secrets import jwt_secret

FIELD, SIGNATURE = "notice", "notice_sig"


def _signature(notice: str) -> str:
    key = jwt_secret(current().settings).encode()
    return hmac.new(key, b"copilot-admin-notice\0" + notice.encode(), hashlib.sha256).hexdigest()


def notice_params(notice: str) -> dict[str, str]:
    """Query parameters that carry `notice` to the next page."""
    return {FIELD: notice, SIGNATURE: _signature(notice)}


def notice_of(params: Mapping[str, str]) -> str:
    """The notice the app itself put in these parameters; '' for none or a forged one."""
    notice, sent = params.get(FIELD, ""), params.get(SIGNATURE, "")
    if notice and sent and hmac.compare_digest(_signature(notice), sent):
        return notice
    return ""
