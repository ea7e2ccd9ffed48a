"""The SUT's measurement channels, declared once (pure).

A SUT with several power supplies is measured by several analyzers, or by the elements of one
multi-element meter (WT332E/WT333E, a multichannel PTDaemon). Either way the channels are one
SUT measurement: each keeps its own stream, and their sum on a common timebase is the SUT's
power (``sum_stream``). ``--analyzer`` / ``MLPOWER_ANALYZER`` declares them as a comma-separated
list of ``[name=]resource[#element]``::

    TCPIP0::127.0.0.1::10001::SOCKET                       one analyzer, as always
    psu1=TCPIP0::a::10001::SOCKET,psu2=TCPIP0::b::10001::SOCKET   two analyzers
    psu1=TCPIP0::a::10001::SOCKET#1,psu2=TCPIP0::a::10001::SOCKET#2   two elements of one meter
    psu1=ptd://127.0.0.1:8888#1,psu2=ptd://127.0.0.1:8888#3   two channels of a multichannel PTDaemon

Channels on the same resource are one analyzer (one meter, one PTDaemon): power-dev's files
that are per analyzer (``ptd_logs_analyzer_<n>.txt``, ``ptd_config``) are numbered by resource.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ResourceError

TOTAL_STREAM = "total"
"""The name of the merged SUT stream (the sum of the channels); no channel may take it."""

MAX_ELEMENT = 8
_NAME_RE = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
_ENTRY_RE = re.compile(r"^(?:(?P<name>[^=\s]+)=)?(?P<resource>[^#]+?)(?:#(?P<element>\d{1,2}))?$")


@dataclass(frozen=True)
class ChannelSpec:
    """One declared channel: its stream name, the analyzer resource, the element of that analyzer."""

    name: str
    resource: str
    element: int = 1
    explicit_element: bool = False  # ``#n`` was given (else the analyzer's only/first element)

    @property
    def address(self) -> str:
        """What the source factory is handed: the resource, with ``#element`` when one was given."""
        return f"{self.resource}#{self.element}" if self.explicit_element else self.resource


def parse_channels(text: str, default_name: str = "analyzer1") -> tuple[ChannelSpec, ...]:
    """The declared channels; unnamed ones are ``default_name`` (one) or ``<default_name>_<i>``."""
    entries = [part.strip() for part in text.split(",") if part.strip()]
    specs: list[ChannelSpec] = []
    for i, entry in enumerate(entries, start=1):
        match = _ENTRY_RE.match(entry)
        if match is None or "=" in match["resource"]:
            raise ResourceError(f"bad channel {entry!r}; expected [name=]resource[#element]")
        name = match["name"] or (default_name if len(entries) == 1 else f"{default_name}_{i}")
        if not _NAME_RE.match(name) or name == TOTAL_STREAM:
            raise ResourceError(f"bad channel name {name!r}: letters, digits, '-' and '_' (not {TOTAL_STREAM!r})")
        element = int(match["element"]) if match["element"] else 1
        if not 1 <= element <= MAX_ELEMENT:
            raise ResourceError(f"channel {name}: element {element} is not 1..{MAX_ELEMENT}")
        specs.append(ChannelSpec(name, match["resource"].strip(), element, match["element"] is not None))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ResourceError(f"channel names must differ: {', '.join(names)}")
    addresses = [(s.resource, s.element) for s in specs]
    if len(set(addresses)) != len(addresses):
        raise ResourceError("two channels name the same element of the same analyzer")
    return tuple(specs)


def split_element(resource: str) -> tuple[str, int | None]:
    """``resource#n`` -> (resource, n); a resource without ``#`` -> (resource, None)."""
    base, sep, element = resource.rpartition("#")
    if sep and element.isdigit():
        return base, int(element)
    return resource, None


def analyzer_indexes(specs: tuple[ChannelSpec, ...]) -> list[int]:
    """Each channel's analyzer number (1-based, by resource in order of first appearance)."""
    order: dict[str, int] = {}
    return [order.setdefault(s.resource, len(order) + 1) for s in specs]
