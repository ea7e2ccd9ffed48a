"""Follow the SUT on the real RabbitMQ: workload phase events move the readings within one update."""

from __future__ import annotations

import socket
import time

import pytest
from mlpower import topology
from mlpower.analyzer_sim import start_simulator
from mlpower.schema import WorkloadPhase


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

            def wait_for(predicate, limit_s: float) -> float:
                start = time.monotonic()
                while time.monotonic() - start < limit_s:
                    if predicate(watts()):
                        return time.monotonic() - start
                    time.sleep(0.02)
                raise AssertionError(f"readings did not move within {limit_s} s")

            time.sleep(update_s * 1.5)
            assert abs(watts() - 100) < 2
            for state, expected in (("started", 600), ("power_end", 100), ("power_begin", 600), ("finished", 100)):
                event = WorkloadPhase(run_id=unique, sut=sut, mode="testing", state=state, t_utc_s=time.time())
                sent = time.monotonic()
                rabbit_bus.publish(event, topology.event_key(event, lab=lab))
                # one update interval, plus the broker's delivery time
                wait_for(lambda w, e=expected: abs(w - e) < 5, update_s + 1.0)
                assert time.monotonic() - sent < update_s + 1.0, state
            # another SUT's events are not ours
            other = WorkloadPhase(run_id=unique, sut="someone_else", state="started", t_utc_s=time.time())
            rabbit_bus.publish(other, topology.event_key(other, lab=lab))
            time.sleep(update_s * 3)
            assert abs(watts() - 100) < 2
