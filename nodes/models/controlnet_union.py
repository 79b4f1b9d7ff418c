"""Union ControlNets (xinsir's ControlNet++, diffusers' `ControlNetUnionModel`): one net for several kinds of
hint, told which kind it is given. Kept apart from the loader so that sampling can import it alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class UnionControl:
    """A union ControlNet applied with the type SetUnionControlNetType chose (ComfyUI's number, which is
    also diffusers' control type index, both xinsir's order; empty: auto)."""

    net: Any
    control_type: tuple[int, ...] = ()

    @property
    def config(self) -> Mapping[str, Any]:
        return self.net.config


def is_union(net: Any) -> bool:
    return "num_control_type" in getattr(net, "config", {})
