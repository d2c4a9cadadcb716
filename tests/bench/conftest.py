"""What the bench commands' tests share."""

from __future__ import annotations

from pathlib import Path

import pytest

from copilot import services
from copilot.knowledge.embeddings import EmbeddingProvider


@pytest.fixture
def bench_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embeddings: EmbeddingProvider
) -> dict[str, str]:
    """A bench command's environment: a scratch data dir, and the session's model (loaded
    once) given to the composition root instead of a new one."""
    monkeypatch.setattr(services, "create_embeddings", lambda _: embeddings)
    return {"COPILOT_DATA_DIR": str(tmp_path / "data")}
