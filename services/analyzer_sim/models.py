"""The meters of the WT300E family the simulator can be: how many elements, which ranges.

docs/wt310e.md §1.1 and §2.1: one communication manual serves the WT310E (1 element, with the
5-200 mA low current ranges), the WT332E (2 elements) and the WT333E (3 elements); the
multi-element models start their current ranges at 0.5 A (0.25 A at crest factor 6). Voltage
ranges and the accuracy formula are the same for every element of every model.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlpower.analyzer_sim import physics


@dataclass(frozen=True)
class MeterModel:
    name: str
    elements: int
    lowest_current_range_a: float  # at crest factor 3; crest factor 6 halves every range

    def current_ranges(self, crest_factor: str) -> tuple[float, ...]:
        lowest = self.lowest_current_range_a / (1.0 if crest_factor == "3" else 2.0)
        return tuple(r for r in physics.CURRENT_RANGES_A[crest_factor] if r >= lowest * (1 - 1e-9))

    def voltage_ranges(self, crest_factor: str) -> tuple[float, ...]:
        return physics.VOLTAGE_RANGES_V[crest_factor]


MODELS: dict[str, MeterModel] = {
    "WT310E": MeterModel("WT310E", 1, 0.005),
    "WT332E": MeterModel("WT332E", 2, 0.5),
    "WT333E": MeterModel("WT333E", 3, 0.5),
}


def meter_model(name: str) -> MeterModel:
    """The model behind an ``*IDN?`` model name; names outside the table (``WT310``, a custom
    identity) behave as a WT310E."""
    return MODELS.get(name.upper(), MODELS["WT310E"])
