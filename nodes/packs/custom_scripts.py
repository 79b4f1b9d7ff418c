"""pythongosssss/ComfyUI-Custom-Scripts' Preset Text (web/js/presetText.js), as a node.

In ComfyUI it is a browser-only node whose presets live in the browser's storage; the editor
copies the chosen preset's text into the widgets it is linked to. Here it is a node whose output
carries that text, so UI files that use it run from the CLI and the API too. Only the pack's
built-in preset is known: a workflow naming another fails validation (value not in the list);
type that preset's text into the linked widget instead.
"""

from __future__ import annotations

from engine.context import RunContext
from engine.declare import Out, node
from engine.types import Choice

PRESETS = {"default negative": "worst quality"}   # the pack's default preset list


@node("PresetText|pysssss", display_name="Preset Text 🐍", category="utils", outputs=[Out("STRING", "text")])
class PresetText:
    """The text of the chosen preset."""

    value = Choice(list(PRESETS))

    def run(self, ctx: RunContext, value: str) -> tuple:
        return (PRESETS[value],)
