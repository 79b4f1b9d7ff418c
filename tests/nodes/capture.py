"""A test-only output node that hands whatever reaches it back to the test."""

from engine.context import RunContext
from engine.declare import node
from engine.types import ANY, Link


@node("Capture", output_node=True)
class Capture:
    """Appends what it receives to ctx.settings["captured"] (a list the test owns)."""

    value = Link(ANY)

    def run(self, ctx: RunContext, value):
        ctx.settings["captured"].append(value)
