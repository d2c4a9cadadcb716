"""The secret that signs sign-in tokens: from settings, or generated once into the data dir."""

from __future__ import annotations

import secrets

from copilot.settings import Settings


def jwt_secret(settings: Settings) -> str:
    if settings.jwt_secret:
        return settings.jwt_secret
    path = settings.ensure_data_dir() / "jwt-secret"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()
