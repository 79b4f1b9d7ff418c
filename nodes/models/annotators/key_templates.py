"""Renaming an original checkpoint's keys to transformers' names and back, by one table of prefix templates.

Each pair holds an original prefix and ours; `{i}` and `{j}` stand for numbers, the same on both sides except where
the original counts from 1 (its template holds one of `one_based`): there `{i}` is one more than ours. The rest of a
key after a matched prefix (`.weight`, `.0.bias`) is kept as it is.
"""

from __future__ import annotations

import re


def _compile(template: str) -> re.Pattern[str]:
    pattern = re.escape(template).replace(r"\{i\}", r"(?P<i>\d+)").replace(r"\{j\}", r"(?P<j>\d+)")
    return re.compile(rf"^{pattern}(?P<rest>\..+)?$")


class KeyTemplates:
    """The pairs (original prefix, our prefix), matched in order; the first match renames."""

    def __init__(self, pairs: list[tuple[str, str]], one_based: tuple[str, ...] = ()) -> None:
        self._rules = [(_compile(original), original, _compile(ours), ours,
                        any(part in original for part in one_based)) for original, ours in pairs]

    def _rename(self, key: str, forward: bool) -> str | None:
        for original_pattern, original, ours_pattern, ours, shifted in self._rules:
            match = (original_pattern if forward else ours_pattern).match(key)
            if match:
                fields = {name: value for name, value in match.groupdict().items() if name != "rest" and value}
                if shifted and "i" in fields:
                    fields["i"] = str(int(fields["i"]) + (-1 if forward else 1))
                return (ours if forward else original).format(**fields) + (match["rest"] or "")
        return None

    def to_ours(self, key: str) -> str | None:
        """The name transformers gives the original `key`; None when no template matches."""
        return self._rename(key, forward=True)

    def to_original(self, key: str) -> str | None:
        """The original file's name for our `key`; None when no template matches."""
        return self._rename(key, forward=False)
