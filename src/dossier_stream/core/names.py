"""Comparison form of Vietnamese unit names.

Printed reports spell the same unit many ways: Unicode NFC or NFD, upper or
lower case, old or new tone placement (``Hoà`` / ``Hòa``, ``Thuỵ`` /
``Thụy``, ``Uỷ`` / ``Ủy``), dashes with or without spaces, a leading "UBND"
or "Ủy ban nhân dân", "TT." for "thị trấn". :func:`normalize_name` folds all
of those; real typos (Kiên Thụy for Kiến Thụy) are aliases in the registry
file instead, because no rule can tell a typo from another place.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

__all__ = ["ADMIN_PREFIX", "normalize_name"]

_TONE_MARKS: Final = "\u0300\u0301\u0303\u0309\u0323"  # grave, acute, tilde, hook, dot below
_OLD_TONE = re.compile(rf"(?<!q)(oa|oe|uy)([{_TONE_MARKS}])(?![\w\u0300-\u036f])")
_INVISIBLE = re.compile("[\u200b-\u200d\u2060\ufeff]")
_DASH = re.compile(r"\s*[-\u2010-\u2015\u2212]\s*")
_SPACE = re.compile(r"\s+")
_UBND = re.compile(r"^(?:ubnd|ủy ban nhân dân)(?:\.\s*|\s+|$)")
_TT = re.compile(r"^tt(?:\.\s*|\s+)")
ADMIN_PREFIX: Final = re.compile(r"^(?:xã|phường|thị trấn|thị xã|huyện|quận|thành phố|đặc khu) ")


def normalize_name(name: str) -> str:
    """Return the comparison form of a unit name.

    NFC, lowercase, old tone placement moved to the modern one (hoà -> hòa,
    thuỵ -> thụy, uỷ -> ủy), dashes unified to ``-`` without surrounding
    spaces, whitespace collapsed, list bullets dropped, a leading "UBND" /
    "Ủy ban nhân dân" removed and a leading "TT." / "TT " read as "thị trấn".

    Args:
        name: a unit name as printed.

    Returns:
        The normalized name; equal for spellings that differ only in the above.
    """
    text = unicodedata.normalize("NFD", _INVISIBLE.sub("", name).lower())
    text = _OLD_TONE.sub(lambda m: m[1][0] + m[2] + m[1][1], text)
    text = unicodedata.normalize("NFC", text)
    text = _SPACE.sub(" ", _DASH.sub("-", text))
    text = text.replace("( ", "(").replace(" )", ")").replace(" (", "(").replace("(", " (")
    text = text.strip().lstrip("-*•+ ").rstrip("- ")
    text = _UBND.sub("", text, count=1)
    return _TT.sub("thị trấn ", text, count=1).strip()
