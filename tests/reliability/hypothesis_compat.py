"""Lets hypothesis-jsonschema (schemathesis 3.x's generator) run on a Hypothesis whose ``many`` lost ``more()``.

hypothesis-jsonschema 0.23.1 (the latest) drives ``hypothesis.internal.conjecture.utils.many`` with
the old ``while elements.more():`` protocol; newer Hypothesis releases only offer
``with many(...) as elements: for _ in elements:``. Without this, every object schema (request
bodies, query parameters) fails to generate with "'many' object has no attribute 'more'".
``more()`` is rebuilt from the new protocol and added only when it is missing; remove this module
once the project pins a Hypothesis that hypothesis-jsonschema supports, or a fixed release exists.
"""

from __future__ import annotations

from typing import Any

from hypothesis.internal.conjecture import utils as cu


def _more(self: Any) -> bool:
    elements = self.__dict__.get("_compat_elements")
    if elements is None:
        self.__enter__()
        elements = self._compat_elements = iter(self)
    try:
        next(elements)
    except StopIteration:
        self.__exit__(None)
        return False
    return True


def install() -> None:
    if not hasattr(cu.many, "more"):
        cu.many.more = _more  # type: ignore[attr-defined]
