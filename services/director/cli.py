"""``mlpower director``: the power-dev server, the HTTP API and bus mode, until SIGTERM/SIGINT."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from .settings import DirectorSettings


def director(
    analyzer: Annotated[str, typer.Option(
        "--analyzer", "-a", help="channels, comma-separated [name=]resource[#element]: TCPIP0::host::10001::SOCKET, "
                                 "/dev/ttyUSB0, ptd://host:8888, nvml, rapl; default MLPOWER_ANALYZER")] = "",
    port: Annotated[int | None, typer.Option("--port", "-p", help="power-dev TCP port (default 4950)")] = None,
    http_port: Annotated[int | None, typer.Option("--http-port", help="HTTP API port (default 8000)")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="results folder (MLPOWER_RESULTS_DIR)")] = None,
    sut: Annotated[str | None, typer.Option("--sut", help="the SUT this director measures")] = None,
    interval: Annotated[float | None, typer.Option("--interval", help="sample interval in seconds (0.1 .. 60)")] = None,
    host: Annotated[str | None, typer.Option(
        "--host", help="listen address (default 127.0.0.1; 0.0.0.0 for SUTs on other machines)")] = None,
    no_bus: Annotated[bool, typer.Option("--no-bus", help="no RabbitMQ: power-dev and HTTP only")] = False,
) -> None:
    """Run the director."""
    from mlpower.cli import run

    def main() -> None:
        import signal
        import threading

        from mlpower.bus import connect_service
        from mlpower.cli import setup_logging
        from mlpower.settings import load_settings

        from .service import DirectorService
        from .settings import DirectorSettings
        from .sources import parse_resource

        overrides = {key: value for key, value in {
            "analyzer": analyzer or None, "powerdev_port": port, "http_port": http_port, "results_dir": out,
            "sut": sut, "sample_interval_s": interval, "host": host}.items() if value is not None}
        if no_bus:
            overrides["bus_mode"] = False
        settings = load_settings(DirectorSettings, **overrides)
        # With real sources, a resource none can open (a path out of /dev, a typo) stops the start
        # rather than the first run; tests that inject fake sources use resources of their own.
        for channel in settings.channels:
            parse_resource(channel.resource)
        setup_logging(settings.log_level)
        bus = None if no_bus else connect_service(settings, client_name=f"director-{settings.sut}",
                                                  spool_path=settings.spool_path)
        service = DirectorService(settings, bus=bus)
        stopping = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stopping.set())
        service.start()
        typer.echo(serving_text(settings, service.powerdev_port, service.http_port, bus is not None), err=True)
        try:
            while not stopping.wait(0.2) and not service.stop_requested.is_set():
                pass
        finally:
            service.stop()
            if bus is not None:
                bus.close()

    run(main)


def serving_text(settings: DirectorSettings, powerdev_port: int, http_port: int, bus: bool) -> str:
    """What the director serves, for its start-up: the lines a user needs to point a SUT at it."""
    from mlpower.listen import url_host

    host = url_host(settings.host)
    control = "token required for control" if settings.api_token else "control open: no MLPOWER_API_TOKEN set"
    return "\n".join((
        f"mlpower director for SUT {settings.sut} (lab {settings.lab})",
        f"  analyzer   {', '.join(settings.analyzers) or '(none configured)'}",
        f"  power-dev  {host}:{powerdev_port}",
        f"  HTTP API   http://{host}:{http_port} ({control})",
        f"  bus        {'StartRun/StopRun for ' + settings.sut if bus and settings.bus_mode else 'off'}",
        f"  results    {settings.results_dir}",
    ))
