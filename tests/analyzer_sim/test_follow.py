"""Follow the SUT on the real RabbitMQ: workload phase events move the readings within one update."""

from __future__ import annotations

import socket
import time

import pytest
from mlpower import topology
from mlpower.analyzer_sim import start_simulator
from mlpower.schema import WorkloadPhase
from mlpower.testing import wait_for


@pytest.mark.rabbitmq
def test_workload_phase_events_move_the_readings_within_one_update(rabbit_bus, unique: str) -> None:
    lab, sut = f"lab{unique}", f"sut{unique}"
    with start_simulator(port=0, load="follow:100:600", bus=rabbit_bus, lab=lab, sut=sut) as sim:
        sim.instrument.set_rate(0.25)
        update_s = sim.instrument.settings.rate_s
        with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as sock:
            f = sock.makefile("rb")
            sock.sendall(b":COMM:HEAD OFF;:INP:VOLT:RANG 300V;:INP:CURR:RANG 5A\n")

            def watts() -> float:
                sock.sendall(b":NUM:NORM:VAL? 3\n")
                return float(f.readline())

            wait_for(lambda: abs(watts() - 100) < 2, 10, what="the first idle reading", poll_s=0.02)
            for state, expected in (("started", 600), ("power_end", 100), ("power_begin", 600), ("finished", 100)):
                event = WorkloadPhase(run_id=unique, sut=sut, mode="testing", state=state, t_utc_s=time.time())
                sent = time.monotonic()
                rabbit_bus.publish(event, topology.event_key(event, lab=lab))
                # one update interval, plus the broker's delivery time
                wait_for(lambda e=expected: abs(watts() - e) < 5, update_s + 1.0, what=f"{expected} W after {state}",
                         poll_s=0.02)
                assert time.monotonic() - sent < update_s + 1.0, state
            # another SUT's events are not ours
            other = WorkloadPhase(run_id=unique, sut="someone_else", state="started", t_utc_s=time.time())
            rabbit_bus.publish(other, topology.event_key(other, lab=lab))
            time.sleep(update_s * 3)  # nothing may change: a negative check waits three updates, no event to wait on
            assert abs(watts() - 100) < 2
