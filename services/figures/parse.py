"""Text to numbers, the four ways upstream's scripts do it and the one way corrected mode does.

Which rule a figure uses changes its numbers (paper-figures.md 2.2), so each rule is a named
function and each figure says which one it applies. ``None`` means "not a number under this
rule" and the caller decides, per upstream, whether such a row is dropped or is an error.
"""

from __future__ import annotations

import math
import re

from mlpower.figures.errors import DataError

_PLAIN_NUMBER = re.compile(r"\d+(\.\d+)?")
_GROUPED_NUMBER = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?([eE][+-]?\d+)?")
# What pandas.to_numeric accepts from a string: a float literal, optional surrounding blanks;
# no thousands separators and (unlike Python's float) no underscores.
_PANDAS_NUMBER = re.compile(r"\s*[+-]?((\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|inf|infinity|nan)\s*", re.IGNORECASE)


def coerce_like_pandas(text: str | None) -> float | None:
    """``pandas.to_numeric(errors='coerce')`` without removing commas: ``"5,888.19"`` -> None."""
    if text is None or not _PANDAS_NUMBER.fullmatch(text):
        return None
    value = float(text)
    return None if math.isnan(value) else value


def strip_then_coerce(text: str | None) -> float | None:
    """Remove ``,`` then ``to_numeric(errors='coerce')`` (fig 5a)."""
    return None if text is None else coerce_like_pandas(text.replace(",", ""))


def plain_number(text: str | None) -> float | None:
    """Only cells that fully match ``^\\d+(\\.\\d+)?$`` count (fig 2 tiny and fig 5c energies)."""
    if text is None or not _PLAIN_NUMBER.fullmatch(text):
        return None
    return float(text)


def strict_float(text: str | None, where: str) -> float:
    """``float(x.replace(',', '').replace('"', ''))``: upstream crashes on anything else, so do we."""
    cleaned = (text or "").replace(",", "").replace('"', "").strip()
    try:
        value = float(cleaned)
    except ValueError:
        raise DataError(f"{where}: Result {text!r} is not a number") from None
    if not math.isfinite(value):
        raise DataError(f"{where}: Result {text!r} is not a finite number")
    return value


def corrected_number(text: str | None) -> float | None:
    """Corrected mode: every number parsed (thousands separators and quotes removed); text stays text.

    Separators count only in groups of three (``5,888.19``): ``1,17002`` or ``1.170,02`` is not a
    number whose value we could know, so it is None (a skip the caller records), not 117002."""
    if text is None:
        return None
    cleaned = text.replace('"', "").strip()
    if "," in cleaned:
        if not _GROUPED_NUMBER.fullmatch(cleaned):
            return None
        cleaned = cleaned.replace(",", "")
    return coerce_like_pandas(cleaned)


def required_number(text: str | None, where: str) -> float:
    """Corrected mode where a row's value is required: ``corrected_number``, else a DataError naming the row."""
    value = corrected_number(text)
    if value is None or not math.isfinite(value):
        raise DataError(f"{where}: Result {text!r} is not a number")
    return value
