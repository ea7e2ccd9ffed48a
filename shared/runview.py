"""One run, one view: what analytics, the checker and the figures know about a run, built from
its document stream (live, document by document, or ``documents.jsonl``) and/or its output tree
on disk (``power/``, ``ranging/``, ``run_1/``).

The view says which kind of run it is, and why (``kind``, ``kind_evidence``), checking in order:

1. **power-dev client session**: the tree holds the power-dev client's output (``power/client.json``
   or ``power/client.log``, or LoadGen's logs beside a recorded client conversation: the client's
   tree, ``client_side``), or ``power/server.json`` records a client conversation (its
   ``messages``: the director's side of such a session);
2. ``run.start.settings.driver`` (``powerdev``, ``bus``, ``direct``), when the director states it
   (what the files show wins over what the stream declares);
3. **bus-mode run**: ``run.start.settings.workload`` names the workload the director had the SUT
   agent run (only a ``StartRun``, from the bus or the director's HTTP API, sets it);
4. **direct run** (a "direct-SCPI run"): anything else, i.e. the director's session
   driven directly (an HTTP timed run, a program) with no power-dev client and no bus workload.
   A stream alone cannot tell a power-dev session from a direct run (the director does not state
   it in ``run.start``): without a tree such a run is called direct, and the evidence says so.

How the run was *metered* is a separate fact (``uses_ptdaemon``): PTDaemon, or the director
reading the analyzer itself (direct SCPI, software meters).

Windows: LoadGen's power window of a mode comes from the mode's ``mlperf_log_detail.txt`` in the
tree, else from the ``power_begin``/``power_end`` marks of source ``loadgen`` in the stream (bus
mode). The director's phase window comes from the ``<mode>_begin``/``<mode>_end`` marks, else
from ``server.json``'s phase times. While a run goes on (``live=True``) a window that has begun
but not ended reaches to the latest sample (``open``).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError
from .loadgen_log import DetailLog, read_detail, read_summary
from .runstream import pages_to_columns, read_documents
from .runtree import RunTree, read_tree
from .samples import Samples
from .schema import PhaseMark, RunDocument, RunStart, RunStop, SamplePage, SourceInfo, StreamDescriptor

log = logging.getLogger(__name__)

DEFAULT_SAMPLE_INTERVAL_S = 1.0  # PTDaemon's Go,1000,0,<mark>: what an spl.txt without a stream was sampled at
POWER_SOURCE_PREFERENCE = ("merged", "ptdaemon", "wt310e", "simulator", "nvml", "rapl")
"""The merged stream, when there is one, is the SUT's power: the sum of its channels (PSUs)."""
MODE_FOLDERS = {"ranging": "ranging", "testing": "run_1"}
CLIENT_FILES = ("power/client.json", "power/client.log")
LOADGEN_FILES = tuple(f"{folder}/mlperf_log_{log}.txt" for folder in ("ranging", "run_1")
                      for log in ("detail", "summary"))
DETAIL_LOG_NAME = "mlperf_log_detail.txt"
OPEN_END_S = 1e-6  # an open (live) window ends this far after the latest sample


class RunKind(enum.StrEnum):
    POWERDEV = "powerdev"
    BUS = "bus"
    DIRECT = "direct"


KIND_NAMES = {
    RunKind.POWERDEV: "power-dev client session",
    RunKind.BUS: "bus-mode run",
    RunKind.DIRECT: "direct run (the director driven directly: no power-dev client, no bus workload)",
}


@dataclass(frozen=True)
class Window:
    begin_utc_s: float
    end_utc_s: float
    source: str  # where the bounds come from, for the evidence
    loadgen: bool  # LoadGen's power window (else the director's phase window)
    open: bool = False  # live: begun, not ended; the end is the latest sample so far

    @property
    def seconds(self) -> float:
        return self.end_utc_s - self.begin_utc_s


@dataclass(frozen=True)
class SampleSource:
    samples: Samples
    where: str  # "run_1/spl.txt" or "stream <name>"
    interval_s: float


@dataclass(frozen=True)
class LoadGenLogs:
    detail: DetailLog | None
    summary: dict[str, str] | None
    where: str  # where they were read, or why they were not


def describe_source(source: SourceInfo) -> str:
    parts = [source.kind, source.model, f"s/n {source.serial}" if source.serial else ""]
    return " ".join(p for p in parts if p) + f" ({source.tier})"


class RunView:
    """A run's documents (idempotent by ``seq``) and, when there is one, its output tree."""

    def __init__(self, run_id: str = "", tree: RunTree | None = None) -> None:
        self._run_id = run_id
        self.tree = tree
        self.documents: dict[int, RunDocument] = {}
        self.start: RunStart | None = None
        self.stop: RunStop | None = None
        self.descriptors: dict[str, StreamDescriptor] = {}
        self.marks: list[PhaseMark] = []
        self._pages: dict[str, dict[int, SamplePage]] = {}
        self._samples: dict[str, Samples] = {}
        # pages taken in order since _samples was built: turned into arrays when samples are asked
        # for, many pages at once (live analytics asks once per several pages)
        self._tails: dict[str, list[SamplePage]] = {}
        self._last_page: dict[str, int] = {}
        self._agent_logs: LoadGenLogs | None = None
        # Facts derived from the documents (kind, power stream, windows), computed once per state:
        # live analytics asks for them once per rule, and any new document clears them.
        self._memo: dict[tuple[Any, ...], Any] = {}
        # Whether every document came after those before it in seq order: the view is then the very
        # one from_documents builds from its documents sorted (what a run's verdict is computed on).
        self.in_seq_order = True
        self._last_seq = -1

    def _memoized(self, key: tuple[Any, ...], compute: Any) -> Any:
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    # ----------------------------------------------------------------------- building
    def add(self, document: RunDocument) -> bool:
        """Take one document; False for a duplicate (same ``seq``), which changes nothing."""
        if document.seq in self.documents:
            return False
        if document.seq < self._last_seq:
            self.in_seq_order = False
        self._last_seq = max(document.seq, self._last_seq)
        self.documents[document.seq] = document
        self._memo.clear()
        if isinstance(document, RunStart):
            self.start = document
        elif isinstance(document, StreamDescriptor):
            self.descriptors[document.stream] = document
        elif isinstance(document, SamplePage):
            pages = self._pages.setdefault(document.stream, {})
            if document.stream in self._samples and document.page > self._last_page.get(document.stream, -1):
                # the next page, as pages arrive live: joined to the cache when samples are asked for
                self._tails.setdefault(document.stream, []).append(document)
            else:
                self._samples.pop(document.stream, None)
                self._tails.pop(document.stream, None)
            pages[document.page] = document
            self._last_page[document.stream] = max(document.page, self._last_page.get(document.stream, -1))
        elif isinstance(document, PhaseMark):
            self.marks.append(document)
            self.marks.sort(key=lambda mark: mark.seq)
            self._agent_logs = None
        elif isinstance(document, RunStop):
            self.stop = document
        return True

    def extend(self, documents: Iterable[RunDocument]) -> RunView:
        for document in documents:
            self.add(document)
        return self

    @classmethod
    def from_documents(cls, documents: Iterable[RunDocument], run_id: str = "") -> RunView:
        return cls(run_id).extend(documents)

    @classmethod
    def read_documents(cls, path: Path) -> RunView:
        """A stored ``documents.jsonl``; a broken line raises ``InputError`` naming the file and line."""
        try:
            return cls.from_documents(read_documents(Path(path)))
        except (OSError, ValueError) as exc:
            raise InputError(str(exc)) from exc

    @classmethod
    def read(cls, path: Path, documents: Iterable[RunDocument] | None = None) -> RunView:
        """An output tree, with its ``documents.jsonl`` as the stream, else ``documents`` (the
        stream as it arrived, when the tree holds none)."""
        tree = read_tree(Path(path))
        view = cls(tree.root.name, tree)
        return view.extend(tree.documents if tree.documents else documents or ())

    # ----------------------------------------------------------------------- identity
    @property
    def run_id(self) -> str:
        for document in (self.start, self.stop):
            if document is not None:
                return document.run_id
        return self._run_id

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.start.settings) if self.start is not None else {}

    @property
    def client(self) -> dict[str, Any] | None:
        return self.tree.client if self.tree is not None else None

    @property
    def server(self) -> dict[str, Any] | None:
        return self.tree.server if self.tree is not None else None

    @property
    def client_side(self) -> bool:
        """Whether the view holds the power-dev client's output: its files (client.json, client.log),
        or, for a session whose server.json records a client conversation, LoadGen's logs (which
        only the client keeps). Removing client.json from a client's tree does not turn it into
        the director's side."""
        if self.tree is None:
            return False
        if any(path in self.tree.present for path in CLIENT_FILES):
            return True
        return bool((self.server or {}).get("messages")) and any(p in self.tree.present for p in LOADGEN_FILES)

    def _kind(self) -> tuple[RunKind, str]:
        found: tuple[RunKind, str] = self._memoized(("kind",), self._find_kind)
        return found

    def _find_kind(self) -> tuple[RunKind, str]:
        # What the files show wins over what the stream declares.
        if self.client_side:
            return RunKind.POWERDEV, "the tree holds the power-dev client's output (client.json, client.log or " \
                                     "LoadGen's logs beside a client conversation)"
        if self.server is not None and self.server.get("messages"):
            return RunKind.POWERDEV, ("power/server.json records a power-dev client conversation (the director's "
                                      "side of the session; client.json and LoadGen's logs are in the client's tree)")
        declared = self.settings.get("driver")
        if declared in set(RunKind):
            return RunKind(declared), f"run.start settings.driver is {declared!r}"
        workload = self.settings.get("workload")
        if workload:
            return RunKind.BUS, f"run.start settings.workload names the SUT agent's workload ({workload!r})"
        if self.tree is None:
            return RunKind.DIRECT, "run.start names no workload (stream only: a power-dev session would look the same)"
        return RunKind.DIRECT, "no power-dev client conversation and no bus workload"

    @property
    def kind(self) -> RunKind:
        return self._kind()[0]

    @property
    def kind_evidence(self) -> str:
        return self._kind()[1]

    @property
    def uses_ptdaemon(self) -> tuple[bool, str]:
        """Whether PTDaemon measured this run, and the evidence either way."""
        server = self.server
        if server is not None and server.get("ptd_messages"):
            return True, "power/server.json lists PTDaemon messages"
        declared = ((server or {}).get("mlpower") or {}).get("ptdaemon")
        if isinstance(declared, list) and any(declared):
            return True, "power/server.json mlpower.ptdaemon says PTDaemon measured"
        kinds = sorted({d.source.kind for d in self.descriptors.values()}
                       | {str(a.get("kind")) for a in ((server or {}).get("mlpower") or {}).get("analyzers") or ()
                          if isinstance(a, dict) and a.get("kind")})
        if "ptdaemon" in kinds:
            return True, "the run stream's source is PTDaemon"
        if server is None and not kinds:
            missing = self.tree.error_for("power/server.json") if self.tree is not None else "no power/server.json"
            return False, f"{missing}: cannot tell whether PTDaemon was used"
        via = f" (stream source: {', '.join(kinds)})" if kinds else ""
        return False, f"no PTDaemon messages: measured without PTDaemon{via}"

    @property
    def compliant_durations(self) -> bool:
        """False when the run declared itself short (run.start, or mlpower's client.json key)."""
        if self.start is not None and not self.start.compliant_durations:
            return False
        return ((self.client or {}).get("mlpower") or {}).get("compliant_durations") is not False

    @property
    def scenario(self) -> str:
        detail = self.loadgen_logs("testing").detail
        return (detail.scenario if detail else "") or (self.start.scenario if self.start else "")

    # ----------------------------------------------------------------------- samples
    def power_stream(self) -> str | None:
        """The stream the published figures come from: the most authoritative source with samples."""
        found: str | None = self._memoized(("power_stream",), self._find_power_stream)
        return found

    def _find_power_stream(self) -> str | None:
        streams = [s for s, pages in self._pages.items() if pages]
        if not streams:
            return None

        def rank(stream: str) -> tuple[int, int]:
            descriptor = self.descriptors.get(stream)
            if descriptor is None:
                return (len(POWER_SOURCE_PREFERENCE), 1)
            official = 0 if descriptor.source.tier == "official" else 1
            kind = descriptor.source.kind
            return (official, POWER_SOURCE_PREFERENCE.index(kind) if kind in POWER_SOURCE_PREFERENCE else 99)

        return min(streams, key=rank)

    def power_source(self) -> str:
        """Where the power figures come from, in words."""
        stream = self.power_stream()
        if stream is not None:
            descriptor = self.descriptors.get(stream)
            return describe_source(descriptor.source) if descriptor else f"stream {stream}"
        if self.tree is not None and self.tree.testing.spl is not None:
            for message in (self.server or {}).get("ptd_messages") or ():
                if str(message.get("cmd", "")).startswith("Identify"):
                    return f"ptdaemon {str(message.get('reply', '')).split(',')[0]} (run_1/spl.txt)"
            return "run_1/spl.txt"
        return "no samples"

    def channel_streams(self) -> list[str]:
        """The channels whose sum is the power stream (several PSUs), in descriptor order; [] when the
        power stream is one analyzer's own."""
        total = self.power_stream()
        descriptor = self.descriptors.get(total) if total is not None else None
        if descriptor is None or descriptor.source.kind != "merged":
            return []
        return [name for name, d in self.descriptors.items() if d.source.kind != "merged" and self._pages.get(name)]

    def channel_samples(self) -> list[SampleSource]:
        """Each channel's own samples (``channel_streams``), with its stream's interval."""
        return [SampleSource(self.stream_samples(name), f"stream {name}", self.descriptors[name].sample_interval_s)
                for name in self.channel_streams()]

    def stream_samples(self, stream: str) -> Samples:
        """One stream's samples, both modes, sorted by time (a window selects what a figure uses)."""
        tail = self._tails.pop(stream, None)
        if stream in self._samples and tail:
            self._samples[stream] = Samples.concat([self._samples[stream], Samples.from_pages(tail)])
        elif stream not in self._samples:
            pages = sorted(self._pages.get(stream, {}).values(), key=lambda page: page.page)
            self._samples[stream] = Samples.from_pages(pages) if pages else Samples.concat([])
        return self._samples[stream]

    def sample_columns(self) -> dict[str, list[Any]]:
        """Every page's rows as columns (with ``stream`` and ``mode``), in document order."""
        pages = [d for d in sorted(self.documents.values(), key=lambda d: d.seq) if isinstance(d, SamplePage)]
        return pages_to_columns(pages)

    @property
    def has_samples(self) -> bool:
        return any(self._pages.values())

    @property
    def sample_interval_s(self) -> float:
        """The interval the power samples were taken at: the stream's, else server.json's, else PTD's 1 s."""
        stream = self.power_stream()
        if stream in self.descriptors:
            return self.descriptors[stream].sample_interval_s
        declared = ((self.server or {}).get("mlpower") or {}).get("sample_interval_s")
        try:
            return float(declared) if declared is not None and float(declared) > 0 else DEFAULT_SAMPLE_INTERVAL_S
        except (TypeError, ValueError):
            return DEFAULT_SAMPLE_INTERVAL_S

    def stream(self) -> SampleSource | None:
        """The power stream's samples (with uncertainty and flags), if the view has a stream."""
        found: SampleSource | None = self._memoized(("stream",), self._power_source_samples)
        return found

    def _power_source_samples(self) -> SampleSource | None:
        stream = self.power_stream()
        if stream is None:
            return None
        return SampleSource(self.stream_samples(stream), f"stream {stream}", self.sample_interval_s)

    def spl(self, mode: str) -> SampleSource | None:
        """A mode's ``spl.txt`` (what the MLPerf checker reads), when the view has a tree holding it."""
        spl = self.tree.modes[mode].spl if self.tree is not None else None
        return SampleSource(spl.samples, f"{MODE_FOLDERS[mode]}/spl.txt", self.sample_interval_s) if spl else None

    def samples(self, mode: str) -> SampleSource | None:
        """The samples a mode's figures come from: the power stream (with uncertainty and flags) when
        the view has one, else the mode's ``spl.txt``."""
        return self.stream() or self.spl(mode)

    def sample_sources(self, mode: str) -> list[SampleSource]:
        """Every record of a mode's samples the view holds: the stream and ``spl.txt``."""
        return [source for source in (self.stream(), self.spl(mode)) if source is not None]

    def why_no_samples(self, mode: str) -> str:
        if self.tree is not None:
            relative = f"{MODE_FOLDERS[mode]}/spl.txt"
            return self.tree.error_for(relative)
        return f"run {self.run_id} has no sample pages"

    def latest_sample_utc_s(self) -> float | None:
        stream = self.power_stream()
        samples = self.stream_samples(stream) if stream else None
        return float(samples.t_utc_s[-1]) if samples is not None and len(samples) else None

    # ----------------------------------------------------------------------- windows
    def _last_mark(self, name: str, mode: str, source: str | None) -> PhaseMark | None:
        found = [m for m in self.marks if m.name == name and m.mode in (mode, None)
                 and (source is None or m.source == source)]
        return found[-1] if found else None

    def _marked(self, begin: str, end: str, mode: str, source: str | None, where: str, loadgen: bool,
                live: bool) -> Window | None:
        first, last = self._last_mark(begin, mode, source), self._last_mark(end, mode, source)
        if first is None:
            return None
        if last is not None and last.seq > first.seq:
            return Window(first.t_utc_s, last.t_utc_s, where, loadgen)
        latest = self.latest_sample_utc_s()
        if live and latest is not None and latest > first.t_utc_s:
            # just past the latest sample, so that the strict "inside" of the MLPerf checker keeps it
            return Window(first.t_utc_s, latest + OPEN_END_S, where + " (open: up to the latest sample)", loadgen,
                          open=True)
        return None

    def loadgen_window(self, mode: str = "testing", *, live: bool = False) -> Window | None:
        """LoadGen's power window: the mode's detail log in the tree, else LoadGen's marks in the stream."""
        found: Window | None = self._memoized(("loadgen_window", mode, live),
                                              lambda: self._find_loadgen_window(mode, live))
        return found

    def _find_loadgen_window(self, mode: str, live: bool) -> Window | None:
        detail = self.tree.modes[mode].detail if self.tree is not None else None
        if detail is not None and detail.power_begin_utc_s is not None and detail.power_end_utc_s is not None:
            return Window(detail.power_begin_utc_s, detail.power_end_utc_s,
                          f"{MODE_FOLDERS[mode]}/{DETAIL_LOG_NAME}", loadgen=True)
        return self._marked("power_begin", "power_end", mode, "loadgen", "LoadGen's marks in the run stream",
                            True, live)

    def why_no_loadgen_window(self, mode: str = "testing") -> str:
        relative = f"{MODE_FOLDERS[mode]}/{DETAIL_LOG_NAME}"
        if self.tree is not None:
            detail = self.tree.modes[mode].detail
            if detail is not None:
                missing = [k for k, v in (("power_begin", detail.power_begin_utc_s),
                                          ("power_end", detail.power_end_utc_s)) if v is None]
                return f"{detail.path}: no {' and no '.join(missing)} marker (LoadGen logged no power window)"
            if relative in self.tree.modes[mode].errors and not self.documents:
                return self.tree.modes[mode].errors[relative]
        return (f"run {self.run_id} has no LoadGen power window for {mode} ({relative} absent, no power_begin/"
                "power_end marks from LoadGen in the stream)")

    def phase_window(self, mode: str = "testing", *, live: bool = False) -> Window | None:
        """The director's measuring phase of a mode: its marks, else server.json's phase times."""
        found: Window | None = self._memoized(("phase_window", mode, live),
                                              lambda: self._find_phase_window(mode, live))
        return found

    def _find_phase_window(self, mode: str, live: bool) -> Window | None:
        marked = self._marked(f"{mode}_begin", f"{mode}_end", mode, None, f"the director's {mode} phase marks",
                              False, live)
        if marked is not None:
            return marked
        phases = ((self.server or {}).get("phases") or {}).get(mode) or []
        try:
            begin, end = float(phases[1][0]), float(phases[2][0])
        except (IndexError, TypeError, ValueError):
            return None
        return Window(begin, end, f"power/server.json {mode} phases (Go to stop)", loadgen=False) if end > begin \
            else None

    # ----------------------------------------------------------------------- LoadGen's logs
    def loadgen_logs(self, mode: str = "testing") -> LoadGenLogs:
        """LoadGen's detail and summary logs of a mode: the tree's, else (bus mode, testing) the ones
        the agent's ``power_end`` mark names, where that file is readable from here."""
        if self.tree is not None:
            folder = self.tree.modes[mode]
            if folder.detail is not None or folder.summary is not None:
                return LoadGenLogs(folder.detail, folder.summary, f"{MODE_FOLDERS[mode]}/")
        if mode != "testing":
            return LoadGenLogs(None, None, f"no {MODE_FOLDERS[mode]}/{DETAIL_LOG_NAME}")
        if self._agent_logs is None:
            self._agent_logs = self._logs_named_by_marks()
        return self._agent_logs

    def _logs_named_by_marks(self) -> LoadGenLogs:
        mark = self._last_mark("power_end", "testing", "loadgen")
        if mark is None or Path(mark.detail).name != DETAIL_LOG_NAME or not Path(mark.detail).is_absolute():
            return LoadGenLogs(None, None, "no LoadGen log in the tree and none named by the stream")
        path = Path(mark.detail)
        try:
            detail = read_detail(path)
            summary_path = path.with_name("mlperf_log_summary.txt")
            return LoadGenLogs(detail, read_summary(summary_path) if summary_path.is_file() else None, str(path))
        except InputError as exc:
            log.info("LoadGen log named by run %s is not readable here: %s", self.run_id, exc)
            return LoadGenLogs(None, None, f"the agent's LoadGen log is not readable here: {exc}")

    # ----------------------------------------------------------------------- idle
    def idle_window(self) -> tuple[float, float] | None:
        begins = [m for m in self.marks if m.name == "idle_begin"]
        ends = [m for m in self.marks if m.name == "idle_end"]
        return (begins[-1].t_utc_s, ends[-1].t_utc_s) if begins and ends else None

