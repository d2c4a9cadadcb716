"""Chainlit entry point: only wires the handlers of `copilot.web.chat`."""

import copilot.web.chat  # noqa: F401  (registers the Chainlit handlers)
