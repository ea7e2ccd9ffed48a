"""The one message vocabulary of mlpower: commands (asks), run documents (facts about one run)
and events (facts about the lab).

Every message is a frozen pydantic model with ``extra="forbid"`` and a ``type`` discriminator.
Units live in field names (``power_w``, ``t_utc_s``). Timestamps are UTC seconds since the epoch.
``SCHEMA_VERSION`` is carried by every message as ``v``; a message of another version does not
decode (it is dead-lettered by the bus) rather than being half understood.

The JSON Schemas generated from these models are committed under ``shared/schemas/`` and a test
fails when they drift from this module (regenerate with ``mlpower schemas write``).
"""

from __future__ import annotations

import enum
import json
import math
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

SCHEMA_VERSION = 1


class SchemaModel(BaseModel):
    # JSON has no infinity or NaN: a non-finite number would come back as null, so it is refused
    # here and a missing value is said with None (and a flag) instead.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _finite_json(value: Any, where: str = "") -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"non-finite number {value} at {where or '<root>'} (JSON cannot carry it)")
    if isinstance(value, dict):
        for key, item in value.items():
            _finite_json(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _finite_json(item, f"{where}[{index}]")
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_finite_json)]
"""Free-form settings and evidence: any JSON, and only JSON."""


class Message(SchemaModel):
    v: Literal[1] = 1  # bump together with SCHEMA_VERSION


# --------------------------------------------------------------------------- shared pieces

Mode = Literal["ranging", "testing"]
"""The two MLPerf measurement modes: auto ranges first, then fixed ranges."""

Tier = Literal["official", "informative"]
"""official: a certified analyzer through PTDaemon; informative: anything else (direct SCPI, NVML...)."""


RUN_ID_PATTERN = r"^[A-Za-z0-9_\-]{1,128}$"
RunId = Annotated[str, Field(pattern=RUN_ID_PATTERN, description=(
    "letters, digits, '-' and '_': a run id names a folder, so it can never be a path"))]

Scenario = Literal["Offline", "Server", "SingleStream", "MultiStream"]
"""LoadGen's scenarios, as LoadGen spells them."""

WORKLOAD_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$"
"""A workload's name: letters, digits and ``_ . : -``, no spaces, quotes, slashes or shell syntax."""

WorkloadName = Annotated[str, Field(pattern=WORKLOAD_NAME_PATTERN, description=(
    "a workload the SUT agent's own configuration declares (MLPOWER_AGENT_WORKLOADS), or a built-in: "
    "builtin:offline|server|singlestream[:cuda]; never a command"))]


BUILTIN_WORKLOADS = tuple(f"builtin:{scenario}{device}" for device in ("", ":cuda")
                          for scenario in ("offline", "server", "singlestream"))
"""The SUT agent's built-in workloads, by name: a ``builtin:`` name outside these is refused on arrival."""

SCENARIOS: tuple[str, ...] = get_args(Scenario)


class WorkloadRequest(SchemaModel):
    """Which workload to run, by name, and the parameters the request may set.

    The SUT agent looks the name up in its own configuration and runs what its owner declared
    there: a request picks a workload, it never carries a command. A parameter that workload does
    not declare is refused before anything runs.
    """

    name: WorkloadName
    duration_s: float | None = Field(default=None, gt=0, le=86400, description="LoadGen min duration; "
                                     "default: the agent's MLPOWER_AGENT_DURATION_S")
    scenario: Scenario | None = Field(default=None, description="for workloads that declare scenarios")


def _named(value: Any) -> Any:
    """A bare name is shorthand for a request without parameters; an empty one for none at all."""
    if isinstance(value, str):
        return {"name": value} if value else None
    return value


WorkloadField = Annotated[WorkloadRequest | None, BeforeValidator(_named)]
"""None: the agent's default workload (MLPOWER_AGENT_WORKLOAD)."""


class SampleFlag(enum.IntFlag):
    """Per-sample quality bits. A flagged sample is kept, shown, and never averaged silently."""

    OK = 0
    OVERRANGE = 1  # the meter reported overrange (or the reading exceeded the range's limit)
    MISSING = 2  # no value: NaN, "no data", a parse failure, or a range-switch gap
    RANGE_CHANGE = 4  # the range changed on this sample (auto-range switch)
    AUTO_RANGE = 8  # taken with auto ranges (ranging mode)
    INTERPOLATED = 16  # produced by merging streams onto a common timebase
    SOFTWARE_METER = 32  # from a software meter (NVML, RAPL): informative only


class SourceInfo(SchemaModel):
    """Where a stream's numbers come from, so that every figure can say how it was measured."""

    kind: Literal["wt310e", "ptdaemon", "nvml", "rapl", "simulator", "merged"]
    model: str = ""
    serial: str = ""
    firmware: str = ""
    address: str = ""
    channel: int = 1
    tier: Tier = "informative"


class ColumnSpec(SchemaModel):
    name: str
    unit: str
    dtype: Literal["float64", "int64", "str"] = "float64"
    description: str = ""


SAMPLE_COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec(name="t_utc_s", unit="s", description="sample time, UTC seconds since the epoch"),
    ColumnSpec(name="power_w", unit="W", description="active power"),
    ColumnSpec(name="voltage_v", unit="V", description="RMS voltage"),
    ColumnSpec(name="current_a", unit="A", description="RMS current"),
    ColumnSpec(name="power_factor", unit="1", description="power factor"),
    ColumnSpec(name="voltage_range_v", unit="V", description="voltage range in use (0 = auto)"),
    ColumnSpec(name="current_range_a", unit="A", description="current range in use (0 = auto)"),
    ColumnSpec(name="uncertainty_w", unit="W", description="per-sample uncertainty of power_w"),
    ColumnSpec(name="flags", unit="1", dtype="int64", description="SampleFlag bits"),
)
"""The columns of every sample page, in order."""


# --------------------------------------------------------------------------- run documents


class RunDocument(Message):
    """Base of the documents that make up one run's stream; ``seq`` orders them within the run."""

    run_id: RunId
    seq: int = Field(ge=0)


class RunStart(RunDocument):
    type: Literal["run.start"] = "run.start"
    lab: str
    sut: str
    analyzer: str
    benchmark: str = ""
    scenario: str = ""
    modes: tuple[Mode, ...] = ("ranging", "testing")
    settings: JsonObject = Field(default_factory=dict)
    t_utc_s: float
    tier: Tier = "informative"
    compliant_durations: bool = True


class StreamDescriptor(RunDocument):
    type: Literal["run.descriptor"] = "run.descriptor"
    stream: str
    source: SourceInfo
    columns: tuple[ColumnSpec, ...] = SAMPLE_COLUMNS
    sample_interval_s: float = Field(gt=0)


class SamplePage(RunDocument):
    """A columnar batch of samples of one stream. Missing values are ``None`` with ``MISSING`` set."""

    type: Literal["run.page"] = "run.page"
    stream: str
    page: int = Field(ge=0, description="page number within the stream, from 0")
    mode: Mode | None = None
    t_utc_s: list[float]
    power_w: list[float | None]
    voltage_v: list[float | None]
    current_a: list[float | None]
    power_factor: list[float | None]
    voltage_range_v: list[float | None]
    current_range_a: list[float | None]
    uncertainty_w: list[float | None]
    flags: list[int]

    @model_validator(mode="after")
    def _columns_have_equal_length(self) -> SamplePage:
        n = len(self.t_utc_s)
        # every page is checked: the common case in one comparison chain, the loop only to say which
        if n == len(self.power_w) == len(self.voltage_v) == len(self.current_a) == len(self.power_factor) \
                == len(self.voltage_range_v) == len(self.current_range_a) == len(self.uncertainty_w) == len(self.flags):
            return self
        for column in SAMPLE_COLUMNS[1:]:
            if len(getattr(self, column.name)) != n:
                raise ValueError(f"column {column.name} has {len(getattr(self, column.name))} rows, t_utc_s {n}")
        return self

    def __len__(self) -> int:
        return len(self.t_utc_s)


# _columns_have_equal_length names the columns for speed: it must name them all
if tuple(c.name for c in SAMPLE_COLUMNS) != ("t_utc_s", "power_w", "voltage_v", "current_a", "power_factor",
                                              "voltage_range_v", "current_range_a", "uncertainty_w", "flags"):
    raise RuntimeError("SAMPLE_COLUMNS changed: update SamplePage._columns_have_equal_length")


MarkName = Literal[
    "idle_begin",
    "idle_end",
    "ranging_begin",
    "ranging_end",
    "testing_begin",
    "testing_end",
    "power_begin",
    "power_end",
]


class PhaseMark(RunDocument):
    type: Literal["run.mark"] = "run.mark"
    name: MarkName
    mode: Mode | None = None
    t_utc_s: float
    source: Literal["director", "loadgen", "agent", "ptdaemon"] = "director"
    detail: str = ""


class RunStop(RunDocument):
    """The one end-of-run fact: how the run ended, why, where its files are, and what it held.

    Also answers a ``StartRun`` refused before anything started (``seq`` 0, no ``run.start``)."""

    type: Literal["run.stop"] = "run.stop"
    status: Literal["success", "failed", "aborted"]
    reason: str = ""
    t_utc_s: float
    pages: int = 0
    samples: int = 0
    marks: int = 0
    output_dir: str = ""


# --------------------------------------------------------------------------- commands (asks)


class StartRun(Message):
    type: Literal["cmd.start_run"] = "cmd.start_run"
    sut: str
    run_id: RunId | Literal[""] = ""
    benchmark: str = ""
    scenario: str = ""
    modes: tuple[Mode, ...] = ("ranging", "testing")
    sample_interval_s: float = Field(default=1.0, gt=0)
    workload: WorkloadField = None
    settings: JsonObject = Field(default_factory=dict)


class StopRun(Message):
    type: Literal["cmd.stop_run"] = "cmd.stop_run"
    run_id: RunId
    reason: str = ""


class SetRanges(Message):
    """Fixed ranges for the next measurement; ``None`` means auto range."""

    type: Literal["cmd.set_ranges"] = "cmd.set_ranges"
    analyzer: str
    voltage_range_v: float | None = None
    current_range_a: float | None = None


class RunWorkloadPhase(Message):
    type: Literal["cmd.run_workload_phase"] = "cmd.run_workload_phase"
    run_id: RunId
    sut: str
    mode: Mode
    workload: WorkloadField = None
    settings: JsonObject = Field(default_factory=dict)


class StopWorkload(Message):
    """Stop this run's workload now (its whole process group); the director sends it whenever a
    run fails or is aborted. An agent not running that run remembers it and never starts it."""

    type: Literal["cmd.stop_workload"] = "cmd.stop_workload"
    run_id: RunId
    sut: str
    reason: str = ""


class RebuildFigures(Message):
    type: Literal["cmd.rebuild_figures"] = "cmd.rebuild_figures"
    figures: tuple[str, ...] = ()
    mode: Literal["paper", "corrected"] = "paper"
    reason: str = ""


# --------------------------------------------------------------------------- events (facts)


class WorkloadPhase(Message):
    """What the SUT agent's workload is doing; the simulator's follow-the-SUT model listens."""

    type: Literal["evt.workload_phase"] = "evt.workload_phase"
    run_id: RunId
    sut: str
    mode: Mode | None = None
    state: Literal["started", "power_begin", "power_end", "finished", "failed"]
    t_utc_s: float
    detail: str = ""


class AgentHeartbeat(Message):
    """The SUT agent is alive and running a phase: sent every few seconds while it runs one; the
    director fails the run when several in a row do not come."""

    type: Literal["evt.agent_heartbeat"] = "evt.agent_heartbeat"
    run_id: RunId
    sut: str
    mode: Mode
    state: Literal["preparing", "running", "stopping"]
    pid: int | None = Field(default=None, description="the workload's process (its group leader) while it runs")
    t_utc_s: float


class Finding(SchemaModel):
    rule: str
    severity: Literal["error", "warning", "info"]
    status: Literal["pass", "fail", "not_applicable"]
    message: str
    evidence: JsonObject = Field(default_factory=dict)


class LiveFinding(Message):
    type: Literal["evt.live_finding"] = "evt.live_finding"
    run_id: RunId
    sut: str = ""
    finding: Finding
    t_utc_s: float


class ChannelSummary(SchemaModel):
    """One channel (power supply) of a SUT measured on several: its own figures over the same window."""

    name: str
    source: str
    avg_power_w: float | None = None
    avg_power_uncertainty_w: float | None = None
    energy_j: float | None = Field(default=None, description="energy over the channel's covered time only")
    coverage_ratio: float | None = None
    samples_in_window: int = 0
    flagged_samples_in_window: int = 0
    share: float | None = Field(default=None, description="the channel's part of the sum of channel averages")


class RunSummary(SchemaModel):
    """The published numbers of one run; every figure names its ``source``."""

    run_id: RunId
    source: str
    method: str
    scenario: str = ""
    window_s: float | None = None
    avg_power_w: float | None = None
    avg_power_uncertainty_w: float | None = None
    energy_j: float | None = Field(default=None, description="energy over the covered time of the window only")
    energy_trapezoid_j: float | None = None
    covered_s: float | None = Field(default=None, description="time of the window the usable samples cover")
    coverage_ratio: float | None = Field(default=None, description="covered_s / window_s")
    idle_power_w: float | None = None
    net_avg_power_w: float | None = None
    performance: float | None = None
    performance_unit: str = ""
    efficiency: float | None = None
    efficiency_unit: str = ""
    samples_in_window: int = 0
    flagged_samples_in_window: int = 0
    compliant_durations: bool = True
    channels: tuple[ChannelSummary, ...] = Field(
        default=(), description="a SUT measured on several channels: each channel's figures (the totals above are "
                                "their merged sum)")


class RunAnalyzed(Message):
    type: Literal["evt.run_analyzed"] = "evt.run_analyzed"
    run_id: RunId
    lab: str = ""
    sut: str = ""
    summary: RunSummary
    findings: tuple[Finding, ...] = ()
    verdict: Literal["pass", "fail"]
    t_utc_s: float


class FiguresRebuilt(Message):
    type: Literal["evt.figures_rebuilt"] = "evt.figures_rebuilt"
    job_id: str
    rendered: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    mode: Literal["paper", "corrected"] = "paper"
    t_utc_s: float


# --------------------------------------------------------------------------- the union

RUN_DOCUMENT_TYPES: tuple[type[RunDocument], ...] = (RunStart, StreamDescriptor, SamplePage, PhaseMark, RunStop)
COMMAND_TYPES: tuple[type[Message], ...] = (StartRun, StopRun, SetRanges, RunWorkloadPhase, StopWorkload,
                                            RebuildFigures)
EVENT_TYPES: tuple[type[Message], ...] = (
    WorkloadPhase,
    AgentHeartbeat,
    LiveFinding,
    RunAnalyzed,
    FiguresRebuilt,
)
MESSAGE_TYPES: tuple[type[Message], ...] = RUN_DOCUMENT_TYPES + COMMAND_TYPES + EVENT_TYPES

AnyMessage = Annotated[
    RunStart
    | StreamDescriptor
    | SamplePage
    | PhaseMark
    | RunStop
    | StartRun
    | StopRun
    | SetRanges
    | RunWorkloadPhase
    | StopWorkload
    | RebuildFigures
    | WorkloadPhase
    | AgentHeartbeat
    | LiveFinding
    | RunAnalyzed
    | FiguresRebuilt,
    Field(discriminator="type"),
]

_MESSAGE_ADAPTER: TypeAdapter[Any] = TypeAdapter(AnyMessage)


class DecodeError(ValueError):
    """A message body that is not a valid message of this schema version."""


def family(message: Message) -> Literal["runs", "commands", "events"]:
    type_name: str = getattr(message, "type")  # noqa: B009 - the base class has no type; every concrete one does
    return {"run": "runs", "cmd": "commands", "evt": "events"}[type_name.split(".", 1)[0]]  # type: ignore[return-value]


def encode(message: Message) -> bytes:
    return message.model_dump_json().encode("utf-8")


def decode(body: bytes | str) -> Message:
    """Parse one message; any failure (bad UTF-8, bad JSON, unknown type, wrong version) is DecodeError."""
    try:
        # The fast path: pydantic parses and validates in one pass (a sample page's columns never
        # become Python objects twice). Anything it refuses goes the slow way, which says why.
        fast: Message = _MESSAGE_ADAPTER.validate_json(body)
        return fast
    except ValidationError:
        pass
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError(f"not JSON: {exc}") from exc
    except RecursionError:  # '[[[[...' deeper than Python's stack: a hostile body, never a consumer's crash
        raise DecodeError("not JSON: nested too deeply") from None
    if isinstance(raw, dict) and raw.get("v", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise DecodeError(f"schema version {raw.get('v')!r} is not {SCHEMA_VERSION}")
    try:
        message: Message = _MESSAGE_ADAPTER.validate_python(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise DecodeError(f"invalid message at {where or '<root>'}: {first.get('msg')}") from exc
    return message


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of every message type, keyed by its ``type``, plus the union."""
    schemas: dict[str, dict[str, Any]] = {
        model.model_fields["type"].default: model.model_json_schema() for model in MESSAGE_TYPES
    }
    schemas["message"] = _MESSAGE_ADAPTER.json_schema()
    return schemas
