"""The secret that signs sign-in tokens, and how secret files are written.

Anyone holding the signing secret can mint a token for any user, so a published default
(the old docker-compose fallback) or a short secret refuses to start. Left empty, a secret
is generated once into the data dir.

Secret files are created with mode 0600 from the first byte (never written readable and
chmod-ed afterwards) and put in place with one atomic link or rename, so a process that
races us reads either nothing or the whole secret, and two racing processes agree on one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from copilot.settings import Settings

MIN_SECRET_LENGTH = 32
# Placeholders from our own files and the usual tutorials: never a real secret.
KNOWN_DEFAULT_SECRETS = frozenset(
    {
        "change-me-to-a-long-random-string",
        "change-me",
        "changeme",
        "secret",
        "your-secret-key",
        "supersecret",
        "password",
    }
)
GENERATE_HINT = "python -c 'import secrets; print(secrets.token_urlsafe(48))'"


def check_jwt_secret(secret: str) -> None:
    """Refuse a known default or a short secret, naming the setting and the fix."""
    if secret.strip().lower() in KNOWN_DEFAULT_SECRETS:
        raise ValueError(
            "COPILOT_JWT_SECRET is a published default value: anyone could sign in as any "
            f"user. Set it to a long random string, e.g. the output of {GENERATE_HINT}."
        )
    if len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(
            f"COPILOT_JWT_SECRET has {len(secret)} characters; use at least "
            f"{MIN_SECRET_LENGTH} random characters, e.g. the output of {GENERATE_HINT}."
        )


def jwt_secret(settings: Settings) -> str:
    if settings.jwt_secret:
        check_jwt_secret(settings.jwt_secret)
        return settings.jwt_secret
    path = settings.ensure_data_dir() / "jwt-secret"
    if not path.exists():
        write_private_file(path, secrets.token_urlsafe(48), replace=False)
    secret = path.read_text().strip()
    check_jwt_secret(secret)
    return secret


def write_private_file(path: Path, text: str, *, replace: bool) -> bool:
    """Write `text` to `path` readable by its owner only (0600) from the start.

    With `replace`, an existing file is swapped for the new one atomically; without, an
    existing file wins and False is returned.
    """
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.write(descriptor, text.encode())
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        if replace:
            os.replace(temporary, path)
            return True
        try:
            os.link(temporary, path)  # fails if another process put its secret there first
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
