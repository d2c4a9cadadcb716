"""The web layer: the ASGI app, the Chainlit chat, its data layer and the admin pages.

Chainlit reads its app root (config, chainlit.md, public/) once, when it is first imported,
so it is set here, before any module of this package imports Chainlit.
"""

import os
from pathlib import Path

_REPOSITORY = Path(__file__).resolve().parents[2]
os.environ.setdefault(
    "CHAINLIT_APP_ROOT", str(_REPOSITORY if (_REPOSITORY / "app.py").exists() else Path.cwd())
)
