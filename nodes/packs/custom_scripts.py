"""pythongosssss/ComfyUI-Custom-Scripts' Preset Text (web/js/presetText.js), as a node, and Show Text.

In ComfyUI it is a browser-only node whose presets live in the browser's storage; the editor
copies the chosen preset's text into the widgets it is linked to. Here it is a node whose output
carries that text, so UI files that use it run from the CLI and the API too. Only the pack's
built-in preset is known: a workflow naming another fails validation (value not in the list);
type that preset's text into the linked widget instead.
"""

from __future__ import annotations

from typing import Any

from engine.context import RunContext
from engine.declare import NodeResult, Out, node
from engine.types import Choice, String

PRESETS = {"default negative": "worst quality"}   # the pack's default preset list
NO_DEFAULT: Any = None   # a link-only input (forceInput) without a default, as the pack declares it


@node("PresetText|pysssss", display_name="Preset Text 🐍", category="utils", outputs=[Out("STRING", "text")])
class PresetText:
    """The text of the chosen preset."""

    value = Choice(list(PRESETS))

    def run(self, ctx: RunContext, value: str) -> tuple:
        return (PRESETS[value],)


@node("ShowText|pysssss", display_name="Show Text 🐍", category="utils", outputs=[Out("STRING", "STRING")],
      output_node=True)
class ShowText:
    """Shows its text on the node (the `text` of its UI output, as the pack's py/show_text.py sends it) and
    passes it on. The pack takes its input as a list; one text arrives here, shown as a list of one."""

    text = String(NO_DEFAULT, force_input=True)

    def run(self, ctx: RunContext, text: str) -> NodeResult:
        return NodeResult(outputs=(text,), ui={"text": [text]})
