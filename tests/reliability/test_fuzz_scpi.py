"""Fuzz the simulator's SCPI parser: any text runs without an exception; failures land in the error queue.

Lines are built from the command table (short and long spellings, suffixes, ``?``, arguments,
``;``-joined units, relative paths) and then mutated, plus raw junk. The invariant checked besides
"never raises": a query that answers nothing has left an error in the queue (wt310e.md 1.10).
"""

from __future__ import annotations

import threading

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlpower.analyzer_sim import VirtualClock
from mlpower.analyzer_sim.instrument import Instrument
from mlpower.analyzer_sim.loads import parse_load
from mlpower.analyzer_sim.scpi import COMMANDS, Dispatcher

from tests.reliability.ledger import LEDGER

FUZZ = settings(max_examples=1500, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

ARGUMENTS = ["", "ON", "OFF", "1", "0", "300", "15V", "1.5E+3", "-1", "nan", "INF", "\"x\"", "'WT300'", "AUTO",
             "URMS,1", "P", "1,2,3", "9" * 40, "1e999", "ÿ", "\x00"]


def _spelling(draw: st.DrawFn, node_long: str, suffix_max: int, optional: bool) -> str:
    short = "".join(ch for ch in node_long if ch.isupper() or ch.isdigit() or ch == "*")
    word = draw(st.sampled_from([short, node_long, node_long.lower(), short.lower(), node_long[:-1]]))
    if suffix_max:
        word += draw(st.sampled_from(["", "1", str(suffix_max), str(suffix_max + 1), "0", "007"]))
    return word


@st.composite
def command_units(draw: st.DrawFn) -> str:
    cmd = draw(st.sampled_from(COMMANDS))
    nodes = [n for n in cmd.nodes if not (n.optional and draw(st.booleans()))]
    words = [_spelling(draw, n.long, n.suffix_max, n.optional) for n in nodes]
    header = words[0] if cmd.pattern.startswith("*") else draw(st.sampled_from([":", ""])) + ":".join(words)
    if draw(st.booleans()):
        header += "?"
    args = draw(st.lists(st.sampled_from(ARGUMENTS) | st.text(max_size=8), max_size=3))
    return header + (" " + ",".join(args) if args else "")


@st.composite
def mutated(draw: st.DrawFn, lines: st.SearchStrategy[str]) -> str:
    text = draw(lines)
    for _ in range(draw(st.integers(0, 3))):
        pos = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        junk = draw(st.sampled_from([":", ";", "?", ",", " ", "\t", "\"", "'", "*", "#", "\x00", "\ufffd"])
                    | st.text(max_size=3))
        if op == "insert":
            text = text[:pos] + junk + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + 1:]
        else:
            text = text[:pos] + junk + text[pos + 1:]
    return text


program_messages = st.lists(command_units(), min_size=1, max_size=4).map(";".join)


def _dispatcher() -> Dispatcher:
    stop = threading.Event()
    stop.set()  # :COMM:WAIT must not block the fuzzer: the wait gives up at once
    return Dispatcher(Instrument(parse_load("constant:250"), VirtualClock(), seed=0), stop=stop)


DISPATCHER = _dispatcher()


def _run(line: str) -> None:
    LEDGER.fuzzed("scpi parser")
    d = DISPATCHER
    d.inst.errors.clear()
    try:
        reply = d.execute(line)
    except Exception as exc:  # the parser must turn every failure into an error-queue entry
        LEDGER.crash(f"scpi parser: {type(exc).__name__}: {exc} on {line!r}")
        raise
    assert reply is None or isinstance(reply, bytes)
    first, _, rest = line.partition(";")
    # *CLS later in the same message empties the error queue, as IEEE 488.2 says it must
    if reply is None and "?" in first.partition(" ")[0] and "*CLS" not in rest.upper():
        assert d.inst.errors, f"a failed query left no error: {line!r}"
    if d.inst.integration.state == "START":  # keep the shared instrument usable for the next line
        d.execute(":INTEG:STOP;:INTEG:RESET")


@FUZZ
@given(mutated(program_messages))
def test_mutated_program_messages_never_raise(line: str) -> None:
    _run(line)


@FUZZ
@given(st.text(max_size=80) | st.binary(max_size=80).map(lambda b: b.decode("latin-1")))
def test_random_text_never_raises(line: str) -> None:
    _run(line)
