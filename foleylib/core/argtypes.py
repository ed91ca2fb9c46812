"""Value types for command-line options: numbers that must be positive or not negative."""
from __future__ import annotations

import argparse
from collections.abc import Callable


def _number(kind: type, name: str, zero_allowed: bool) -> Callable[[str], int | float]:
    """An argparse type named `name` (argparse's messages say "invalid NAME value"): text -> kind, refused below 0
    and, unless `zero_allowed`, at 0."""

    def parse(text: str) -> int | float:
        value = kind(text)
        if value < 0 or (value == 0 and not zero_allowed):
            raise argparse.ArgumentTypeError(f"must be {'zero or more' if zero_allowed else 'positive'}, got {text}")
        return value

    parse.__name__ = name
    return parse


positive_int = _number(int, "positive_int", zero_allowed=False)
positive_float = _number(float, "positive_float", zero_allowed=False)
non_negative_int = _number(int, "non_negative_int", zero_allowed=True)
non_negative_float = _number(float, "non_negative_float", zero_allowed=True)
