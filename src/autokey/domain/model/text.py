"""The one rule for free text that people type and other people read: pool names, offer
titles, marketplace ids, webhook ids.

Such text is stored, listed and shown, so it must be valid Unicode (no unpaired surrogate,
which no database can encode), free of control characters (NUL included, which PostgreSQL
refuses) and free of bidirectional controls, which make a name display as something else.
"""

from __future__ import annotations

import enum
import unicodedata

from autokey.domain.model.errors import InvalidInput


class TextProblem(enum.StrEnum):
    """Why a text field was refused. Values are the wire codes."""

    INVALID_LENGTH = "invalid_length"
    UNPAIRED_SURROGATE = "unpaired_surrogate"
    CONTROL_CHARACTER = "control_character"
    BIDI_CONTROL = "bidi_control"


BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f"  # ALM, LRM, RLM
    "\u202a\u202b\u202c\u202d\u202e"  # LRE, RLE, PDF, LRO, RLO
    "\u2066\u2067\u2068\u2069"  # LRI, RLI, FSI, PDI
)
_CONTROL_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})


def text_problem(value: str, *, max_length: int, min_length: int = 1) -> TextProblem | None:
    """What is wrong with `value` as single-line display text, or None when it is fine.
    Length counts code points after trimming surrounding whitespace."""
    for ch in value:
        category = unicodedata.category(ch)
        if category == "Cs":
            return TextProblem.UNPAIRED_SURROGATE
        if category in _CONTROL_CATEGORIES:
            return TextProblem.CONTROL_CHARACTER
        if ch in BIDI_CONTROLS:
            return TextProblem.BIDI_CONTROL
    if not min_length <= len(value.strip()) <= max_length:
        return TextProblem.INVALID_LENGTH
    return None


def check_text(field: str, value: str, *, max_length: int, min_length: int = 1) -> str:
    """`value` unchanged when it passes `text_problem`; InvalidInput naming `field` otherwise."""
    if problem := text_problem(value, max_length=max_length, min_length=min_length):
        raise InvalidInput.of(field, problem.value)
    return value
