"""Fuzz the bus's decoder: any body either decodes to a valid message or raises DecodeError."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlpower import schema
from mlpower.bus import Delivery, handle_body

from tests.reliability.ledger import LEDGER
from tests.shared.examples import example_of

EXAMPLES = [schema.encode(example_of(t, "fuzz")) for t in schema.MESSAGE_TYPES]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)


def _decode_or_refuse(body: bytes) -> None:
    LEDGER.fuzzed("bus decoder")
    try:
        message = schema.decode(body)
    except schema.DecodeError:
        return
    except Exception as exc:  # anything else is a crash of the consumer
        LEDGER.crash(f"bus decoder: {type(exc).__name__}: {exc}")
        raise
    assert schema.decode(schema.encode(message)) == message


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_never_crash_the_decoder(body: bytes) -> None:
    _decode_or_refuse(body)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(EXAMPLES), st.data())
def test_mutated_messages_decode_or_are_refused(example: bytes, data: st.DataObject) -> None:
    raw = json.loads(example)
    key = data.draw(st.sampled_from(sorted(raw)))
    raw[key] = data.draw(json_values)
    if data.draw(st.booleans()):
        raw[data.draw(st.text(min_size=1, max_size=8))] = data.draw(json_values)
    _decode_or_refuse(json.dumps(raw).encode())


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_consumer_path_dead_letters_instead_of_raising(body: bytes) -> None:
    LEDGER.fuzzed("bus consumer")
    handled: list[object] = []
    reason = handle_body(body, Delivery("k", "x"), lambda m, d: handled.append(m))
    assert (reason is None) == bool(handled)
    if reason is not None:
        assert reason.startswith(("decode:", "handler:"))
