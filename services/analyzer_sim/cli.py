"""``mlpower sim`` (the WT310E simulator) and ``mlpower ptd`` (the PTDaemon emulator, PTDaemon's own flags)."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

import typer


def _stop_on_signals() -> threading.Event:
    """SIGTERM and SIGINT set the returned event: both end the process cleanly (exit status 0).

    Installed before the ready line is printed, so a signal sent right after it is never lost.
    """
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop


def _serve_until(stop: threading.Event) -> None:
    while not stop.wait(0.5):
        pass


def sim(
    port: int | None = typer.Option(None, "--port", "-p", help="SCPI TCP port (0 = any free port); default 10001"),
    load: str | None = typer.Option(None, "--load", help="constant:W | profile:IDLE_W:LOAD_W, optionally "
                                    "followed by :IDLE_S:RAMP_S:STEADY_S | trace:CSV[:SCALE[:OFFSET_W]] | "
                                    "follow[:IDLE_W:LOAD_W]"),
    seed: int | None = typer.Option(None, "--seed", help="RNG seed; same seed, same readings"),
    host: str | None = typer.Option(None, "--host", help="address to bind (default 127.0.0.1)"),
    pty: bool | None = typer.Option(None, "--pty/--no-pty", help="also serve the RS-232 flavour on a pseudo-terminal"),
    control_port: int | None = typer.Option(None, "--control-port", help="control API and /metrics port "
                                            "(default 8003; 0 = any free port; -1 = none)"),
    sut: str | None = typer.Option(None, "--sut", help="follow this SUT's workload phases (default: any)"),
    traces_dir: Path | None = typer.Option(None, "--traces-dir", help="the folder trace:CSV names a file in "
                                           "(MLPOWER_SIM_TRACES_DIR; default: the repository's shared/data/traces)"),
    model: str | None = typer.Option(None, "--model", help="WT310E (default), WT332E (2 elements), WT333E (3)"),
    split: str | None = typer.Option(None, "--split", help="the SUT's load over its PSUs, e.g. 0.5,0.5 "
                                     "(default: equal over this meter's elements)"),
    imbalance: float | None = typer.Option(None, "--imbalance", help="moves imbalance/n of the load from the "
                                           "last PSU to the first, e.g. 0.05"),
    psus: str | None = typer.Option(None, "--psus", help="the PSUs (from 1) this meter's elements measure, "
                                    "e.g. 2 for the second of two WT310Es (default: 1..elements)"),
) -> None:
    """Run the WT310E/WT332E/WT333E simulator until SIGTERM/SIGINT."""
    from mlpower.cli import run

    def main() -> None:
        from mlpower.analyzer_sim.settings import Settings
        from mlpower.analyzer_sim.simulator import start_simulator
        from mlpower.cli import setup_logging
        from mlpower.listen import url_host
        from mlpower.settings import load_settings

        overrides = {k: v for k, v in {"port": port, "load": load, "seed": seed, "host": host, "pty": pty,
                                       "control_port": control_port, "sut": sut,
                                       "traces_dir": traces_dir, "model": model, "split": split,
                                       "imbalance": imbalance, "psus": psus}.items() if v is not None}
        settings = load_settings(Settings, **overrides)
        setup_logging(settings.log_level)
        stop = _stop_on_signals()
        handle = start_simulator(port=settings.port, load=settings.load, seed=settings.seed, host=settings.host,
                                 pty=settings.pty, control_port=settings.control_port if settings.control_port >= 0
                                 else None, settings=settings, sut=settings.sut)
        try:
            print(f"listening on {url_host(settings.host)}:{handle.port}", flush=True)
            if handle.pty_path:
                print(f"pty {handle.pty_path}", file=sys.stderr, flush=True)
            if handle.control_port is not None:
                print(f"control on http://{url_host(settings.host)}:{handle.control_port}", file=sys.stderr, flush=True)
            _serve_until(stop)
        finally:
            handle.stop()

    run(main)


def ptd(ctx: typer.Context) -> None:
    """Run the PTDaemon emulator: -l <file> -p <port> [-b n] [-c ch] [-D|-n|-g|-y|-U] [-e] <deviceType> <devicePort>.

    With -n the device port is the WT310E's address (host[:port], SCPI port 10001 by default), e.g. a
    running ``mlpower sim``; otherwise the readings come from the emulator's own simulated meter.
    """
    from mlpower.cli import run

    def main() -> None:
        from mlpower.analyzer_sim.ptd import DEFAULT_SCPI_PORT, USAGE, parse_ptd_args
        from mlpower.analyzer_sim.settings import Settings
        from mlpower.analyzer_sim.simulator import start_ptd
        from mlpower.settings import load_settings

        if any(arg in ("-h", "-?", "--usage") for arg in ctx.args):
            typer.echo(USAGE)
            return
        args = parse_ptd_args(list(ctx.args))
        settings = load_settings(Settings)
        analyzer_host, analyzer_port = "127.0.0.1", None
        if args.interface_flag == "-n":
            analyzer_host, _, port_text = args.device_port.partition(":")
            analyzer_port = int(port_text) if port_text.isdigit() else DEFAULT_SCPI_PORT

        def console(text: str) -> None:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()

        stop = _stop_on_signals()
        handle = start_ptd(port=args.port, log_path=args.log_path, seed=settings.seed, load=settings.load,
                           analyzer_port=analyzer_port, analyzer_host=analyzer_host, console=console,
                           extended_log=args.extended_log, device_type=args.device_type, settings=settings,
                           host=settings.host, channels=args.read_channels)
        try:
            _serve_until(stop)
        finally:
            handle.stop()

    run(main)


ptd.context_settings = {"allow_extra_args": True, "ignore_unknown_options": True}  # type: ignore[attr-defined]


def ptd_main() -> None:
    """Entry point for a stand-alone ``ptd`` executable: power-dev's config names one path, no arguments."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command(context_settings=ptd.context_settings)(ptd)  # type: ignore[attr-defined]
    app()
