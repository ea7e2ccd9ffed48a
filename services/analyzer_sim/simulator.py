"""Wiring one simulator together: instrument, load, transports, faults, metrics and control API."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlpower.analyzer_sim import physics
from mlpower.analyzer_sim.clock import RealClock, VirtualClock
from mlpower.analyzer_sim.faults import Faults, FaultState
from mlpower.analyzer_sim.instrument import Clock, Identity, Instrument, PhysicsOptions
from mlpower.analyzer_sim.loads import FollowLoad, LoadModel, SwitchableLoad, parse_load
from mlpower.analyzer_sim.metrics import SimMetrics
from mlpower.analyzer_sim.models import MODELS, meter_model
from mlpower.analyzer_sim.server import ScpiPtyServer, ScpiTcpServer
from mlpower.analyzer_sim.settings import Settings
from mlpower.analyzer_sim.split import ElementFeed, element_feed, parse_shares

log = logging.getLogger(__name__)


def physics_options(settings: Settings) -> PhysicsOptions:
    mains = physics.Mains(voltage_v=settings.mains_voltage_v, freq_hz=settings.mains_freq_hz,
                          power_factor=settings.power_factor, current_crest_factor=settings.current_crest_factor)
    return PhysicsOptions(mains=mains, range_switch_gap_updates=settings.range_switch_gap_updates,
                          fixed_range_settle_updates=settings.range_settle_updates)


class SimulatorHandle:
    """A running simulator. ``model`` is the (switchable) load: ``handle.set_load("constant:1500")``."""

    def __init__(self, *, port: int, load: str | LoadModel, seed: int, host: str, pty: bool,
                 control_port: int | None, clock: Clock | None = None, bus: Any = None, lab: str | None = None,
                 sut: str | None = None, settings: Settings | None = None, options: PhysicsOptions | None = None,
                 api_token: str | None = None) -> None:
        self.settings = settings or Settings()
        self.clock: Clock = clock or RealClock()
        self._bus, self._own_bus, self._subscription = bus, False, None
        self._lab = lab or self.settings.lab
        self._sut = sut or self.settings.sut
        traces = self.settings.traces_dir
        self.model = SwitchableLoad(parse_load(load, traces) if isinstance(load, str) else load, traces)
        self._metrics_ref: SimMetrics | None = None
        self.faults = Faults(on_injected=lambda name: self._metrics_ref.fault(name) if self._metrics_ref else None)
        self.instrument = Instrument(
            self.model, self.clock, seed=seed, faults=self.faults,
            identity=Identity(model=self.settings.model, serial=self.settings.serial, firmware=self.settings.firmware),
            options=options or physics_options(self.settings), feed=self.settings.element_feed(),
        )
        self.metrics = SimMetrics(self.instrument, analyzer=self.settings.serial,
                                  true_power_w=lambda: self.true_power_w)
        self._metrics_ref = self.metrics
        self.faults.subscribe(self._on_fault)
        self._tcp = ScpiTcpServer(self.instrument, self.faults, host, port, lambda h: self.metrics.command("tcp"),
                                  max_connections=self.settings.max_connections,
                                  handshake_timeout_s=self.settings.handshake_timeout_s,
                                  idle_timeout_s=self.settings.idle_timeout_s)
        self._pty = ScpiPtyServer(self.instrument, self.faults, lambda h: self.metrics.command("pty")) if pty else None
        self._control = None
        try:
            if control_port is not None and control_port >= 0:
                from mlpower.analyzer_sim.app import create_app
                from mlpower.http_serve import HttpServer

                token = self.settings.api_token if api_token is None else api_token
                self._control = HttpServer(create_app(self, token), host, control_port,
                                           name="the simulator's control API").start()
            self._apply_setting_faults()
            if isinstance(self.model.current, FollowLoad):
                self._ensure_follow()
        except BaseException:
            self.stop()  # a half-started simulator must not keep its ports
            raise

    # ---- public surface
    @property
    def port(self) -> int:
        return self._tcp.port

    @property
    def pty_path(self) -> str | None:
        return self._pty.path if self._pty is not None else None

    @property
    def control_port(self) -> int | None:
        return self._control.port if self._control is not None else None

    @property
    def sut_true_power_w(self) -> float:
        """The whole SUT's true power now (all PSUs, whichever meter measures them)."""
        return self.model.power_w(self.clock.now() - self.instrument.start_s)

    @property
    def true_power_w(self) -> float:
        """The true power this meter's elements carry now, together."""
        return sum(self.instrument.feed.element_powers_w(self.sut_true_power_w))

    def element_truth(self) -> list[dict[str, Any]]:
        """Per element: the PSU it measures, its share of the SUT's load, and its true power at
        the meter's latest update, the instant of ``instrument.readings`` (tests compare readings
        and their sums with these)."""
        inst = self.instrument
        with inst.lock:
            inst.advance()
            powers = inst.true_element_w
        shares = inst.feed.split.effective_shares()
        return [{"element": k, "psu": psu, "share": shares[psu - 1], "true_power_w": powers[k - 1]}
                for k, psu in enumerate(inst.feed.psus, start=1)]

    def set_load(self, spec: str | LoadModel) -> LoadModel:
        model = self.model.set_load(spec)
        if isinstance(model, FollowLoad):
            self._ensure_follow()
        return model

    def stop(self) -> None:
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None
        if self._own_bus and self._bus is not None:
            self._bus.close()
        if self._control is not None:
            self._control.stop()
        if self._pty is not None:
            self._pty.stop()
        self._tcp.stop()

    def __enter__(self) -> SimulatorHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- internals
    def _apply_setting_faults(self) -> None:
        s = self.settings
        if s.stall_s:
            self.faults.stall(s.stall_s)
        if s.clock_drift_ppm:
            self.faults.clock_drift(s.clock_drift_ppm)
        if s.error_code:
            self.faults.error_queue(s.error_code)

    def _on_fault(self, name: str, state: FaultState) -> None:
        if name in ("clock_drift", "clear") and hasattr(self.clock, "set_error"):
            self.clock.set_error(state.clock_drift_ppm, state.clock_offset_s)

    def _ensure_follow(self) -> None:
        if self._subscription is not None:
            return
        from mlpower.analyzer_sim import follow

        if self._bus is None:
            from mlpower.bus import connect_service

            self._bus = connect_service(self.settings, client_name="mlpower-sim")
            self._own_bus = True
        self._subscription = follow.subscribe(self._bus, self.model, self._lab, self._sut)


def start_simulator(port: int = 0, load: str | LoadModel = "constant:250", seed: int = 0, host: str = "127.0.0.1",
                    pty: bool = False, control_port: int | None = None, **extra: Any) -> SimulatorHandle:
    """Start a WT310E simulator in this process; stop it with ``.stop()`` or use it as a context manager.

    Extra keywords: ``clock`` (e.g. ``VirtualClock()`` for fast deterministic tests), ``bus``, ``lab``,
    ``sut`` (for ``load="follow"``), ``settings``, ``options`` (``PhysicsOptions``), ``api_token``.
    """
    return SimulatorHandle(port=port, load=load, seed=seed, host=host, pty=pty, control_port=control_port, **extra)


class PtdHandle:
    """A running PTDaemon emulator: ``port``, ``console_lines``, ``log_path``, ``model`` (its load) and ``stop()``."""

    def __init__(self, *, port: int, log_path: str | Path | None, seed: int, load: str | LoadModel,
                 analyzer_port: int | None, analyzer_host: str = "127.0.0.1", host: str = "127.0.0.1",
                 device_type: int = 49, console: Callable[[str], None] | None = None, extended_log: bool = False,
                 settings: Settings | None = None, clock: Clock | None = None,
                 console_path: str | Path | None = None, channels: tuple[int, ...] = ()) -> None:
        from mlpower.analyzer_sim.ptd import InProcessMeter, MeterLink, PtdServer, ScpiMeter, console_file_sink

        self.settings = settings or Settings()
        self.clock: Clock = clock or RealClock()
        traces = self.settings.traces_dir
        self.model = SwitchableLoad(parse_load(load, traces) if isinstance(load, str) else load, traces)
        self.faults = Faults()
        self.faults.subscribe(self._on_fault)
        self.instrument: Instrument | None = None
        meter: MeterLink
        if analyzer_port is not None:
            meter = ScpiMeter(analyzer_host, analyzer_port, channels=channels)
        else:
            model_name, feed = self._meter_for(channels)
            self.instrument = Instrument(
                self.model, self.clock, seed=seed, faults=self.faults,
                identity=Identity(model=model_name, serial=self.settings.serial, firmware=self.settings.firmware),
                options=physics_options(self.settings), feed=feed)
            self.instrument.set_rate(0.25)  # PTD samples at 1 Hz; a faster meter keeps every sample fresh
            meter = InProcessMeter(self.instrument, channels)
        self.log_path = Path(log_path) if log_path is not None else None
        # The console as the stand-alone daemon prints it to stdout, into a file (a director that
        # connects to this daemon reads it for ptd_logs.txt, as it reads a launched PTDaemon's pipe).
        self.console_path = Path(console_path) if console_path is not None else None
        self._console_file = console_file_sink(self.console_path, console) if self.console_path else None
        sink = self._console_file.write if self._console_file is not None else console
        try:
            self.server = PtdServer(meter, self.clock, port=port, host=host, log_path=self.log_path,
                                    device_type=device_type, console=sink, faults=self.faults,
                                    extended_log=extended_log, range_ack_delay_s=self.settings.ptd_range_ack_delay_s,
                                    handshake_timeout_s=self.settings.handshake_timeout_s,
                                    idle_timeout_s=self.settings.idle_timeout_s, channels=channels)
        except BaseException:
            meter.close()
            if self._console_file is not None:
                self._console_file.close()
            raise

    def _meter_for(self, channels: tuple[int, ...]) -> tuple[str, ElementFeed]:
        """The simulated meter behind the daemon: the configured one, or for a multichannel PTD a
        WT332E/WT333E with enough elements for the channels read (the configured model when it
        has them), its elements fed by the configured split."""
        s = self.settings
        if not channels:
            return s.model, s.element_feed()
        configured = meter_model(s.model)
        model = configured if configured.elements >= max(channels) else MODELS["WT332E" if max(channels) <= 2
                                                                                 else "WT333E"]
        if model is configured:
            return model.name, s.element_feed()
        return model.name, element_feed(model.elements, parse_shares(s.split) if s.split.strip() else None,
                                         s.imbalance)

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def console_lines(self) -> list[str]:
        return self.server.console_lines

    def set_load(self, spec: str | LoadModel) -> LoadModel:
        return self.model.set_load(spec)

    def _on_fault(self, name: str, state: FaultState) -> None:
        if name in ("clock_drift", "clear") and hasattr(self.clock, "set_error"):
            self.clock.set_error(state.clock_drift_ppm, state.clock_offset_s)

    def stop(self) -> None:
        self.server.stop()
        if self._console_file is not None:
            self._console_file.close()

    def __enter__(self) -> PtdHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_ptd(port: int = 0, log_path: str | Path | None = None, seed: int = 0, load: str | LoadModel = "constant:250",
              analyzer_port: int | None = None, **extra: Any) -> PtdHandle:
    """Start a PTDaemon emulator in this process; readings from its own physics, or over SCPI from
    a WT310E (simulator) on ``analyzer_port``. Extra keywords: ``analyzer_host``, ``host``, ``console``
    (a callable receiving console text), ``extended_log``, ``settings``, ``clock``, ``device_type``
    and, for a multichannel type (48/59/61/77), ``channels``: the meter channels read, e.g.
    ``(1, 2, 3)`` for ``-c 1,3`` (``PtdArgs.read_channels``)."""
    return PtdHandle(port=port, log_path=log_path, seed=seed, load=load, analyzer_port=analyzer_port, **extra)


__all__ = ["PtdHandle", "SimulatorHandle", "VirtualClock", "start_ptd", "start_simulator"]
