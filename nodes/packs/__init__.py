"""Nodes of ComfyUI custom node packs that shared SD workflows use, rebuilt under the packs' names.

Each pack's own Python cannot run here (it reaches into ComfyUI's internals), so each module below
re-implements the nodes of one pack from its public source, keeping class names, inputs, defaults
and output slots; its category names the pack. `known_packs` names the packs we do not build.
"""

NODE_PACKAGE = True   # engine.registry.load_package loads this folder's modules too
