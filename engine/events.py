"""Execution events: the names the executor emits and small listeners for them.

A listener is any callable `(event, data) -> None`. The server forwards events to WebSocket
clients, the CLI drives a progress bar; `EventLog` records them (tests).
"""

from __future__ import annotations

from typing import Any, Callable, Literal

Listener = Callable[[str, dict[str, Any]], None]

# How a run ended (a history entry's `status_str`).
RunStatus = Literal["success", "error", "interrupted"]

EXECUTION_START = "execution_start"
EXECUTION_CACHED = "execution_cached"
EXECUTING = "executing"
PROGRESS = "progress"
EXECUTED = "executed"
PREVIEW = "preview"
EXECUTION_SUCCESS = "execution_success"
EXECUTION_ERROR = "execution_error"
EXECUTION_INTERRUPTED = "execution_interrupted"
# The queue's own events: its length changed; a prompt whose worker died starts again.
STATUS = "status"
EXECUTION_RESTARTING = "execution_restarting"

# The events that end a run: the server sends them only once the history entry is written.
TERMINAL_EVENTS = (EXECUTION_SUCCESS, EXECUTION_ERROR, EXECUTION_INTERRUPTED)

# The events ComfyUI keeps in a history entry's `status.messages`.
HISTORY_EVENTS = (EXECUTION_START, EXECUTION_CACHED, EXECUTION_SUCCESS, EXECUTION_ERROR, EXECUTION_INTERRUPTED)


class EventLog:
    """Records every event in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        self.events.append((event, data))

    def names(self) -> list[str]:
        return [event for event, _ in self.events]

    def of(self, event: str) -> list[dict[str, Any]]:
        return [data for name, data in self.events if name == event]
