"""Value types for command-line options: numbers that must be positive or not negative, shares, probability
masses, spans of a clip."""
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


def fraction_span(text: str) -> tuple[float, float]:
    """An argparse type: "START,END", a part of a clip as fractions of its length, 0 <= START < END <= 1 and not
    the whole clip."""
    try:
        start, end = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected START,END (fractions of a clip), got {text}") from None
    if not 0 <= start < end <= 1 or end - start >= 1:
        raise argparse.ArgumentTypeError(f"needs 0 <= START < END <= 1, not the whole clip; got {text}")
    return start, end


def _fraction(text: str, ok: Callable[[float], bool], interval: str) -> float:
    """A number parsed from text, refused unless ok(value) (`interval` names the allowed values in messages)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in {interval}, got {text}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"must be in {interval}, got {text}")
    return value


def share(text: str) -> float:
    """An argparse type: a share of the examples, 0 <= value < 1."""
    return _fraction(text, lambda v: 0 <= v < 1, "[0, 1)")


def probability_mass(text: str) -> float:
    """An argparse type: a probability mass, 0 < value <= 1 (nucleus sampling's top_p)."""
    return _fraction(text, lambda v: 0 < v <= 1, "(0, 1]")
