"""Follow the SUT: the simulator listens to the SUT agent's WorkloadPhase events and switches its load."""

from __future__ import annotations

import logging

from mlpower import topology
from mlpower.analyzer_sim.loads import FollowLoad, SwitchableLoad
from mlpower.bus import Bus, Delivery, Subscription
from mlpower.schema import Message, WorkloadPhase

log = logging.getLogger(__name__)


def follow_queue(lab: str, sut: str = "*") -> topology.QueueSpec:
    """A private, auto-deleted queue: a simulator that goes away must leave nothing behind."""
    sut_word = "*" if sut == "*" else topology.segment(sut)
    return topology.QueueSpec(name="", exchange=topology.EVENTS_EXCHANGE, durable=False, exclusive=True,
                              patterns=(f"workload_phase.{topology.segment(lab)}.{sut_word}",))


def subscribe(bus: Bus, load: SwitchableLoad, lab: str, sut: str = "*") -> Subscription:
    def on_message(message: Message, delivery: Delivery) -> None:
        if not isinstance(message, WorkloadPhase):
            return
        model = load.current
        if isinstance(model, FollowLoad):
            model.on_phase(message.state)
            log.info("workload %s on %s: load now %s", message.state, message.sut,
                     "active" if model.active else "idle")

    return bus.subscribe(follow_queue(lab, sut), on_message)
