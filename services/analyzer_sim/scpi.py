"""The WT310E's command language: a table of commands (data) plus the IEEE 488.2 parser that walks it.

Program messages are ``;``-joined units; a unit without a leading ``:`` continues the previous
unit's path (``:INP:VOLT:RANG?;AUTO?`` asks ``:INP:VOLT:AUTO?``). Mnemonics match in their short
form (the upper-case part of the table's spelling) or in full, in any case; ``[...]`` nodes are
optional and ``<x>`` takes a numeric suffix. A unit that fails goes to the error queue; a failed
query contributes no reply (wt310e.md 1.10), so a message whose queries all failed gets no line.
"""

from __future__ import annotations

import math
import re
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from mlpower.analyzer_sim.instrument import SIGMA, UPDATE_RATES_S, Instrument, default_items
from mlpower.analyzer_sim.scpi_errors import ScpiError, message_for

# ---------------------------------------------------------------------------------- the grammar


@dataclass(frozen=True)
class Node:
    long: str  # as written in the manual, e.g. "VOLTage"
    optional: bool = False
    suffix_max: int = 0  # > 0: the node takes a numeric suffix 1..suffix_max

    @property
    def short(self) -> str:
        return "".join(ch for ch in self.long if ch.isupper() or ch.isdigit() or ch == "*")

    def matches(self, letters: str) -> bool:
        word = letters.upper()
        return word == self.long.upper() or word == self.short


def parse_pattern(pattern: str) -> tuple[Node, ...]:
    """``[:INPut]:VOLTage:RANGe`` -> nodes; ``ITEM<x>`` takes a suffix; ``*IDN`` is a single node."""
    if pattern.startswith("*"):
        return (Node(pattern.upper()),)
    nodes = []
    for optional_part, plain_part in re.findall(r"\[:([^\]]+)\]|:([^:\[]+)", pattern):
        text = optional_part or plain_part
        suffix_max = 0
        if text.endswith("<x>"):
            text, suffix_max = text[:-3], 255 if text.startswith("ITEM") else 16
        nodes.append(Node(text, optional=bool(optional_part), suffix_max=suffix_max))
    return tuple(nodes)


_TOKEN = re.compile(r"^([A-Za-z*]+?)(\d*)$")


def _match(nodes: tuple[Node, ...], tokens: list[str]) -> list[int] | None:
    """Suffixes of the suffixed nodes when ``tokens`` spell ``nodes``; None when they do not."""
    if not nodes:
        return [] if not tokens else None
    node = nodes[0]
    if tokens:
        m = _TOKEN.match(tokens[0])
        if m and node.matches(m.group(1)):
            digits = m.group(2)
            if digits and not node.suffix_max:
                pass  # a suffix on a node that takes none: no match here
            else:
                rest = _match(nodes[1:], tokens[1:])
                if rest is not None:
                    if node.suffix_max:
                        suffix = int(digits) if digits else 1
                        if not 1 <= suffix <= node.suffix_max:
                            raise ScpiError(114)
                        return [suffix, *rest]
                    return rest
    if node.optional:
        rest = _match(nodes[1:], tokens)
        if rest is not None:
            return [1, *rest] if node.suffix_max else rest
    return None


# ---------------------------------------------------------------------------------- parameters

_NUMBER = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)$")
_UNITS = {
    "V": {"": 1.0, "V": 1.0, "MV": 1e-3, "KV": 1e3},
    "A": {"": 1.0, "A": 1.0, "MA": 1e-3},
    "S": {"": 1.0, "S": 1.0, "MS": 1e-3},
    "": {"": 1.0},
}


def number(arg: str, unit: str = "") -> float:
    m = _NUMBER.match(arg.strip())
    if not m:
        raise ScpiError(120 if arg[:1].isdigit() else 104, arg)
    factor = _UNITS[unit].get(m.group(2).upper())
    if factor is None:
        raise ScpiError(131, arg)
    value = float(m.group(1)) * factor
    if not math.isfinite(value):  # 1e999: no setting takes it, and int() of it would raise
        raise ScpiError(222, arg)
    return value


def integer(arg: str, low: int, high: int) -> int:
    value = number(arg)
    if value != int(value):
        raise ScpiError(120, arg)
    if not low <= value <= high:
        raise ScpiError(222, arg)
    return int(value)


def boolean(arg: str) -> bool:
    word = arg.strip().upper()
    if word in ("ON", "1"):
        return True
    if word in ("OFF", "0"):
        return False
    raise ScpiError(141, arg)


def choice(arg: str, *spellings: str) -> str:
    """The canonical (full, upper-case) form of a character parameter given in short or long form."""
    for spelling in spellings:
        if Node(spelling).matches(arg.strip()):
            return spelling.upper()
    raise ScpiError(141, arg)


FUNCTIONS = ("U", "I", "P", "S", "Q", "LAMBda", "PHI", "FU", "FI", "UPPeak", "UMPeak", "IPPeak", "IMPeak",
             "PPPeak", "PMPeak", "WH", "WHP", "WHM", "AH", "AHP", "AHM", "TIME", "MATH", "URANge", "IRANge", "NONE")
_SHORT_OF = {f.upper(): Node(f).short for f in FUNCTIONS}
_FIXED_POINT_FUNCTIONS = frozenset({"LAMBDA", "PHI", "FU", "FI"})
RATE_TOKENS = {"100MS": 0.1, "250MS": 0.25, "500MS": 0.5, "1S": 1.0, "2S": 2.0, "5S": 5.0, "10S": 10.0, "20S": 20.0}


# ---------------------------------------------------------------------------------- reply formats


def _exponent_text(exponent: int) -> str:
    return f"E{'+' if exponent >= 0 else '-'}{abs(exponent):02d}"


def nr3(value: float, significant: int = 4) -> str:
    """Engineering NR3 as the meter prints settings: 600.0E+00, 500.0E-03, 1.000E+00."""
    if value == 0:
        return "0.000E+00"
    exponent = 3 * math.floor(math.log10(abs(value)) / 3)
    mantissa = value / 10**exponent
    decimals = max(0, significant - 1 - int(math.floor(math.log10(abs(mantissa)))))
    return f"{mantissa:.{decimals}f}{_exponent_text(exponent)}"


def rate_text(seconds: float) -> str:
    exponent = 3 * math.floor(math.log10(seconds) / 3)
    return f"{seconds / 10**exponent:.1f}{_exponent_text(exponent)}"


def measured_text(value: float, step: float, fixed_point: bool = False) -> str:
    """A measured value with the resolution of its range: 247.92E+00, 198.11E-03, 0.4855E+00; NAN; INF."""
    if math.isnan(value):
        return "NAN"
    if math.isinf(value):
        return "INF" if value > 0 else "-INF"
    if fixed_point:
        exponent = 0
    elif value != 0:
        exponent = 3 * math.floor(math.log10(abs(value)) / 3)
    else:
        exponent = 3 * math.floor(math.log10(step * 1e4) / 3)
    decimals = max(0, int(round(exponent - math.log10(step))))
    return f"{value / 10**exponent:.{decimals}f}{_exponent_text(exponent)}"


def float_block(values: list[float]) -> bytes:
    """IEEE 488.2 definite-length block of big-endian float32; 9.9E+37 overrange, 9.91E+37 no data."""
    packed = b"".join(
        struct.pack(">f", 9.91e37 if math.isnan(v) else math.copysign(9.9e37, v) if math.isinf(v) else v)
        for v in values
    )
    return f"#4{len(packed):04d}".encode() + packed


# ---------------------------------------------------------------------------------- handlers


@dataclass
class Context:
    inst: Instrument
    suffixes: list[int]
    stop: threading.Event


Setter = Callable[[Context, list[str]], None]
Getter = Callable[[Context, list[str]], "str | bytes"]


def _no_args(args: list[str]) -> None:
    if args:
        raise ScpiError(108)


def _one_arg(args: list[str]) -> str:
    if not args:
        raise ScpiError(109)
    if len(args) > 1:
        raise ScpiError(108)
    return args[0]


def _chars(ctx: Context, full: str) -> str:
    return full if ctx.inst.comm.verbose else Node(_CANONICAL_CHARS.get(full, full)).short


_CANONICAL_CHARS = {"START": "STARt", "STOP": "STOP", "RESET": "RESet", "TIMEUP": "TIMeup", "ERROR": "ERRor",
                    "VMEAN": "VMEan", "NORMAL": "NORMal", "CONTINUOUS": "CONTinuous", "ASCII": "ASCii",
                    "FLOAT": "FLOat", "VOLTAGE": "VOLTage", "CURRENT": "CURRent", "LINEAR": "LINear",
                    "EXPONENT": "EXPonent", **{f.upper(): f for f in FUNCTIONS}}


def comm_flag(attr: str) -> tuple[Setter, Getter]:
    def set_(ctx: Context, args: list[str]) -> None:
        setattr(ctx.inst.comm, attr, boolean(_one_arg(args)))

    def get(ctx: Context, args: list[str]) -> str:
        _no_args(args)
        return "1" if getattr(ctx.inst.comm, attr) else "0"

    return set_, get


def measurement_flag(attr: str) -> tuple[Setter, Getter]:
    def set_(ctx: Context, args: list[str]) -> None:
        setattr(ctx.inst.settings, attr, boolean(_one_arg(args)))

    def get(ctx: Context, args: list[str]) -> str:
        _no_args(args)
        return "1" if getattr(ctx.inst.settings, attr) else "0"

    return set_, get


def measurement_choice(attr: str, *spellings: str, during_integration: bool = True) -> tuple[Setter, Getter]:
    def set_(ctx: Context, args: list[str]) -> None:
        value = choice(_one_arg(args), *spellings)
        if not during_integration and ctx.inst.integration.state == "START":
            raise ScpiError(813)
        setattr(ctx.inst.settings, attr, value)

    def get(ctx: Context, args: list[str]) -> str:
        _no_args(args)
        return _chars(ctx, getattr(ctx.inst.settings, attr))

    return set_, get


def _idn(ctx: Context, args: list[str]) -> str:
    _no_args(args)
    return ctx.inst.identity.idn()


def _rst(ctx: Context, args: list[str]) -> None:
    _no_args(args)
    ctx.inst.reset_measurement()


def _cls(ctx: Context, args: list[str]) -> None:
    _no_args(args)
    ctx.inst.clear_status()


def _constant(text: str) -> Getter:
    def get(ctx: Context, args: list[str]) -> str:
        _no_args(args)
        return text

    return get


def _stb(ctx: Context, args: list[str]) -> str:
    _no_args(args)
    eav = 4 if ctx.inst.errors else 0  # bit 2: error available
    ees = 1 if ctx.inst.eesr_latched & ctx.inst.eese else 0
    return str(eav | ees)


def _ignore(ctx: Context, args: list[str]) -> None:
    """Accepted and without effect in a simulator (status enables, key lock)."""


def _set_crest(ctx: Context, args: list[str]) -> None:
    ctx.inst.set_crest_factor(choice(_one_arg(args), "3", "6", "6A"))


def _get_crest(ctx: Context, args: list[str]) -> str:
    _no_args(args)
    return ctx.inst.settings.crest_factor


def _element_of(ctx: Context, per_element: bool) -> int | None:
    """The element a ``...:ELEMent<x>`` command names (checked against the model); None: all."""
    if not per_element:
        return None
    element = ctx.suffixes[-1]
    if element > ctx.inst.elements:
        raise ScpiError(114, f"element {element}")
    return element


def _range_commands(channel: str, per_element: bool = False) -> tuple[Setter, Getter]:
    """``RANGe`` sets every element and reads element 1; ``RANGe:ELEMent<x>`` one element."""
    unit = "V" if channel == "V" else "A"

    def set_(ctx: Context, args: list[str]) -> None:
        value = number(_one_arg(args), unit)
        element = _element_of(ctx, per_element)
        (ctx.inst.set_voltage_range if channel == "V" else ctx.inst.set_current_range)(value, element)

    def get(ctx: Context, args: list[str]) -> str:
        _no_args(args)
        element = _element_of(ctx, per_element) or 1
        ctx.inst.advance()
        e = ctx.inst.settings.elements[element - 1]
        return nr3(e.voltage_range_v if channel == "V" else e.current_range_a)

    return set_, get


def _auto_commands(channel: str, per_element: bool = False) -> tuple[Setter, Getter]:
    def set_(ctx: Context, args: list[str]) -> None:
        ctx.inst.set_auto(channel, boolean(_one_arg(args)), _element_of(ctx, per_element))

    def get(ctx: Context, args: list[str]) -> str:
        _no_args(args)
        element = _element_of(ctx, per_element) or 1
        ctx.inst.advance()
        e = ctx.inst.settings.elements[element - 1]
        return "1" if (e.voltage_auto if channel == "V" else e.current_auto) else "0"

    return set_, get


def _set_rate(ctx: Context, args: list[str]) -> None:
    arg = _one_arg(args).strip().upper()
    seconds = RATE_TOKENS.get(arg)
    if seconds is None:
        seconds = number(arg, "S")
    ctx.inst.set_rate(seconds)


def _get_rate(ctx: Context, args: list[str]) -> str:
    _no_args(args)
    return rate_text(ctx.inst.settings.rate_s)


def _set_sample_rate(ctx: Context, args: list[str]) -> None:
    ctx.inst.set_rate(number(_one_arg(args), "S"))


def _get_number(ctx: Context, args: list[str]) -> str:
    _no_args(args)
    return str(ctx.inst.settings.numeric_number)


def _set_number(ctx: Context, args: list[str]) -> None:
    ctx.inst.settings.numeric_number = integer(_one_arg(args), 1, 255)


def _set_item(ctx: Context, args: list[str]) -> None:
    if not args:
        raise ScpiError(109)
    if len(args) > 3:
        raise ScpiError(108)
    function = choice(args[0], *FUNCTIONS)
    element = _element_argument(args[1]) if len(args) > 1 else 1
    index = ctx.suffixes[-1]
    items = ctx.inst.settings.items
    while len(items) < index:
        items.append(("NONE", 1))
    items[index - 1] = (function, element)


def _element_argument(arg: str) -> int:
    """An item's element: 1 to 3, or SIGMa for the Σ function."""
    if Node("SIGMa").matches(arg.strip()):
        return SIGMA
    return integer(arg, 1, 3)


def _get_item(ctx: Context, args: list[str]) -> str:
    _no_args(args)
    index = ctx.suffixes[-1]
    items = ctx.inst.settings.items
    function, element = items[index - 1] if index <= len(items) else ("NONE", 1)
    name = function if ctx.inst.comm.verbose else _SHORT_OF[function]
    element_text = ("SIGMA" if ctx.inst.comm.verbose else "SIGM") if element == SIGMA else str(element)
    return name if function == "NONE" else f"{name},{element_text}"


def _preset(ctx: Context, args: list[str]) -> None:
    # The four factory patterns are not documented; each starts with the default U, I, P, ... map.
    integer(_one_arg(args), 1, 4)
    ctx.inst.settings.items = default_items(ctx.inst.elements)


def _clear_items(ctx: Context, args: list[str]) -> None:
    if not args:
        raise ScpiError(109)
    items = ctx.inst.settings.items
    if args[0].strip().upper() == "ALL":
        first, last = 1, 255
    else:
        first = integer(args[0], 1, 255)
        last = integer(args[1], first, 255) if len(args) > 1 else 255
    for index in range(first, min(last, len(items)) + 1):
        items[index - 1] = ("NONE", 1)


def _set_format(ctx: Context, args: list[str]) -> None:
    ctx.inst.settings.numeric_format = choice(_one_arg(args), "ASCii", "FLOat")


def _get_format(ctx: Context, args: list[str]) -> str:
    _no_args(args)
    return _chars(ctx, ctx.inst.settings.numeric_format)


def _value(ctx: Context, args: list[str]) -> str | bytes:
    inst = ctx.inst
    readings = inst.output_readings()
    items = inst.settings.items
    if args:
        indices = [integer(_one_arg(args), 1, 255)]
    else:
        indices = list(range(1, inst.settings.numeric_number + 1))
    values: list[tuple[float, float, bool]] = []
    for index in indices:
        function, element = items[index - 1] if index <= len(items) else ("NONE", 1)
        value, step = inst.item_value(function, element, readings)
        values.append((value, step, function in _FIXED_POINT_FUNCTIONS))
    if inst.settings.numeric_format == "FLOAT":
        return float_block([v for v, _, _ in values])
    return ",".join(measured_text(v, step, fixed) for v, step, fixed in values)


def _set_hold(ctx: Context, args: list[str]) -> None:
    ctx.inst.set_hold(boolean(_one_arg(args)))


def _get_hold(ctx: Context, args: list[str]) -> str:
    _no_args(args)
    return "1" if ctx.inst.settings.numeric_hold else "0"


def _integ_action(action: str) -> Setter:
    def set_(ctx: Context, args: list[str]) -> None:
        _no_args(args)
        {"start": ctx.inst.integrate_start, "stop": ctx.inst.integrate_stop,
         "reset": ctx.inst.integrate_reset}[action]()

    return set_


def _integ_state(ctx: Context, args: list[str]) -> str:
    _no_args(args)
    return _chars(ctx, ctx.inst.integration_state())


def _set_timer(ctx: Context, args: list[str]) -> None:
    if len(args) != 3:
        raise ScpiError(109 if len(args) < 3 else 108)
    hours, minutes, seconds = integer(args[0], 0, 10000), integer(args[1], 0, 59), integer(args[2], 0, 59)
    if ctx.inst.integration.state == "START":
        raise ScpiError(813)
    ctx.inst.settings.integ_timer_s = hours * 3600 + minutes * 60 + seconds


def _get_timer(ctx: Context, args: list[str]) -> str:
    _no_args(args)
    total = ctx.inst.settings.integ_timer_s
    return f"{total // 3600},{total % 3600 // 60},{total % 60}"


def _status_error(ctx: Context, args: list[str]) -> str:
    _no_args(args)
    code = ctx.inst.pop_error()
    return f'{code},"{message_for(code)}"' if ctx.inst.comm.qmessage else str(code)


def _eesr(ctx: Context, args: list[str]) -> str:
    _no_args(args)
    return str(ctx.inst.read_eesr())


def _condition(ctx: Context, args: list[str]) -> str:
    _no_args(args)
    return str(ctx.inst.condition())


def _set_eese(ctx: Context, args: list[str]) -> None:
    ctx.inst.eese = integer(_one_arg(args), 0, 65535)


def _get_eese(ctx: Context, args: list[str]) -> str:
    _no_args(args)
    return str(ctx.inst.eese)


def _set_filter(ctx: Context, args: list[str]) -> None:
    ctx.inst.filters[ctx.suffixes[-1]] = choice(_one_arg(args), "RISE", "FALL", "BOTH", "NEVer")


def _get_filter(ctx: Context, args: list[str]) -> str:
    _no_args(args)
    return _chars(ctx, ctx.inst.filters.get(ctx.suffixes[-1], "NEVER"))


def _wait(ctx: Context, args: list[str]) -> None:
    bit = integer(_one_arg(args), 1, 16) - 1
    ctx.inst.wait_for_event(bit, ctx.stop)


def _set_command_set(ctx: Context, args: list[str]) -> None:
    ctx.inst.comm.command_set = choice(_one_arg(args), "WT200", "WT300")


def _get_command_set(ctx: Context, args: list[str]) -> str:
    _no_args(args)
    return ctx.inst.comm.command_set


def _set_avg_count(ctx: Context, args: list[str]) -> None:
    count = integer(_one_arg(args), 8, 64)
    if count not in (8, 16, 32, 64):
        raise ScpiError(224, str(count))
    ctx.inst.settings.averaging_count = count


def _get_avg_count(ctx: Context, args: list[str]) -> str:
    _no_args(args)
    return str(ctx.inst.settings.averaging_count)


def _wiring(ctx: Context, args: list[str]) -> str:
    _no_args(args)
    return "P1W2"


# ---------------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Command:
    pattern: str
    set: Setter | None = None
    query: Getter | None = None
    reply_header: bool = True  # measured data (VALue?) is returned without a header
    blocking: bool = False  # waits for the meter (:COMM:WAIT): must not hold the instrument lock
    nodes: tuple[Node, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", parse_pattern(self.pattern))


def _pair(pattern: str, handlers: tuple[Setter, Getter], **kw: bool) -> Command:
    return Command(pattern, set=handlers[0], query=handlers[1], **kw)


COMMANDS: tuple[Command, ...] = (
    # IEEE 488.2 common commands
    Command("*IDN", query=_idn),
    Command("*RST", set=_rst),
    Command("*CLS", set=_cls),
    Command("*CAL", query=_constant("0")),
    Command("*OPT", query=_constant("NONE")),
    Command("*TST", query=_constant("0")),
    Command("*OPC", set=_ignore, query=_constant("1")),
    Command("*WAI", set=_ignore),
    Command("*ESR", query=_constant("0")),
    Command("*ESE", set=_ignore, query=_constant("0")),
    Command("*SRE", set=_ignore, query=_constant("0")),
    Command("*STB", query=_stb),
    # COMMunicate / SYSTem
    _pair(":COMMunicate:HEADer", comm_flag("header")),
    _pair(":COMMunicate:VERBose", comm_flag("verbose")),
    _pair(":COMMunicate:REMote", comm_flag("remote")),
    _pair(":COMMunicate:LOCKout", comm_flag("lockout")),
    Command(":COMMunicate:WAIT", set=_wait, blocking=True),
    Command(":SYSTem:COMMunicate:COMMand", set=_set_command_set, query=_get_command_set),
    _pair(":SYSTem:KLOCk", comm_flag("key_lock")),
    # INPut
    Command(":INPut:WIRing", query=_wiring),
    _pair(":INPut:MODE", measurement_choice("mode", "RMS", "VMEan", "DC", during_integration=False)),
    Command(":INPut:CFACtor", set=_set_crest, query=_get_crest),
    _pair("[:INPut]:VOLTage:RANGe", _range_commands("V")),
    _pair("[:INPut]:CURRent:RANGe", _range_commands("I")),
    _pair("[:INPut]:VOLTage:AUTO", _auto_commands("V")),
    _pair("[:INPut]:CURRent:AUTO", _auto_commands("I")),
    _pair("[:INPut]:VOLTage:RANGe:ELEMent<x>", _range_commands("V", per_element=True)),
    _pair("[:INPut]:CURRent:RANGe:ELEMent<x>", _range_commands("I", per_element=True)),
    _pair("[:INPut]:VOLTage:AUTO:ELEMent<x>", _auto_commands("V", per_element=True)),
    _pair("[:INPut]:CURRent:AUTO:ELEMent<x>", _auto_commands("I", per_element=True)),
    _pair(":INPut:FILTer:LINE", measurement_flag("line_filter")),
    _pair(":INPut:FILTer:FREQuency", measurement_flag("freq_filter")),
    _pair(":INPut:SYNChronize", measurement_choice("sync", "VOLTage", "CURRent", "OFF")),
    # MEASure / rate
    _pair(":MEASure:AVERaging[:STATe]", measurement_flag("averaging")),
    _pair(":MEASure:AVERaging:TYPE", measurement_choice("averaging_type", "LINear", "EXPonent")),
    Command(":MEASure:AVERaging:COUNt", set=_set_avg_count, query=_get_avg_count),
    Command(":RATE", set=_set_rate, query=_get_rate),
    Command(":SAMPle:RATE", set=_set_sample_rate, query=_get_rate),
    Command(":SAMPle:HOLD", set=_set_hold, query=_get_hold),
    # NUMeric
    Command(":NUMeric:FORMat", set=_set_format, query=_get_format),
    Command(":NUMeric[:NORMal]:NUMber", set=_set_number, query=_get_number),
    Command(":NUMeric[:NORMal]:ITEM<x>", set=_set_item, query=_get_item),
    Command(":NUMeric[:NORMal]:PRESet", set=_preset),
    Command(":NUMeric[:NORMal]:CLEar", set=_clear_items),
    Command(":NUMeric[:NORMal]:VALue", query=_value, reply_header=False),
    Command(":NUMeric:HOLD", set=_set_hold, query=_get_hold),
    # INTEGrate
    _pair(":INTEGrate:MODE", measurement_choice("integ_mode", "NORMal", "CONTinuous", during_integration=False)),
    Command(":INTEGrate:TIMer", set=_set_timer, query=_get_timer),
    Command(":INTEGrate:STARt", set=_integ_action("start")),
    Command(":INTEGrate:STOP", set=_integ_action("stop")),
    Command(":INTEGrate:RESet", set=_integ_action("reset")),
    Command(":INTEGrate:STATe", query=_integ_state),
    # STATus
    Command(":STATus:ERRor", query=_status_error),
    _pair(":STATus:QMESsage", comm_flag("qmessage")),
    Command(":STATus:EESR", query=_eesr),
    Command(":STATus:EESE", set=_set_eese, query=_get_eese),
    Command(":STATus:CONDition", query=_condition),
    Command(":STATus:FILTer<x>", set=_set_filter, query=_get_filter),
)

assert all(r in RATE_TOKENS.values() for r in UPDATE_RATES_S)


# ---------------------------------------------------------------------------------- the parser


def split_units(line: str) -> list[str]:
    """Split a program message on ``;`` outside quoted strings."""
    units, current, quote = [], [], ""
    for ch in line:
        if quote:
            current.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
            current.append(ch)
        elif ch == ";":
            units.append("".join(current))
            current = []
        else:
            current.append(ch)
    units.append("".join(current))
    return [u.strip() for u in units]


def _header_text(cmd: Command, suffixes: list[int], verbose: bool) -> str:
    parts, suffix_iter = [], iter(suffixes)
    for node in cmd.nodes:
        word = node.long.upper() if verbose else node.short
        if node.suffix_max:
            word += str(next(suffix_iter, 1))
        parts.append(word)
    return ":" + ":".join(parts)


class Dispatcher:
    """Executes program messages against one instrument; one per connection (the path is per session)."""

    def __init__(self, inst: Instrument, stop: threading.Event | None = None,
                 on_command: Callable[[str], None] | None = None, commands: tuple[Command, ...] = COMMANDS) -> None:
        self.inst, self.commands = inst, commands
        self.stop = stop or threading.Event()
        self.on_command = on_command or (lambda header: None)

    def lookup(self, tokens: list[str]) -> tuple[Command, list[int]]:
        for cmd in self.commands:
            suffixes = _match(cmd.nodes, tokens)
            if suffixes is not None:
                return cmd, suffixes
        raise ScpiError(113, ":".join(tokens))

    def execute(self, line: str) -> bytes | None:
        """Run one program message; the reply bytes without terminator, or None when nothing answers."""
        replies: list[bytes] = []
        path: list[str] = []
        injected = self.inst.faults.snapshot().error_code
        if injected:
            self.inst.push_error(injected)
        for unit in split_units(line):
            if not unit:
                continue
            header, _, arg_text = unit.partition(" ")
            if "\t" in header:
                header, _, more = header.partition("\t")
                arg_text = more + arg_text
            is_query = header.endswith("?")
            header = header.rstrip("?")
            if header.startswith("*"):
                tokens = [header]
            else:
                absolute = header.startswith(":")
                tokens = [t for t in header.strip(":").split(":")]
                if not absolute and path:
                    tokens = path + tokens
                if any(not t for t in tokens):
                    self.inst.push_error(102)
                    continue
                path = tokens[:-1]
            args = [a.strip() for a in arg_text.split(",")] if arg_text.strip() else []
            try:
                cmd, suffixes = self.lookup(tokens)
                handler = cmd.query if is_query else cmd.set
                if handler is None:
                    raise ScpiError(113, f"{header}{'?' if is_query else ''}")
                self.on_command(cmd.pattern)
                ctx = Context(self.inst, suffixes, self.stop)
                if cmd.blocking:
                    result = handler(ctx, args)
                else:
                    with self.inst.lock:
                        result = handler(ctx, args)
            except ScpiError as exc:
                self.inst.push_error(exc.code)
                continue
            if is_query and result is not None:
                body = result if isinstance(result, bytes) else result.encode("ascii")
                if self.inst.comm.header and cmd.reply_header and not cmd.pattern.startswith("*"):
                    body = _header_text(cmd, suffixes, self.inst.comm.verbose).encode() + b" " + body
                replies.append(body)
        return b";".join(replies) if replies else None

