"""``mlpower agent``: run the SUT agent as a power-dev client (``--server``) or on the bus (``--bus``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer


def agent(
    server: Annotated[str | None, typer.Option(help="the power-dev server, HOST[:PORT] (port 4950 by default)")] = None,
    workload: Annotated[str | None, typer.Option(
        help="client mode: builtin:offline, builtin:server or builtin:singlestream (each also with :cuda), "
             "or your shell command writing LoadGen "
             "logs into $MLPOWER_LOADGEN_LOG_DIR (or the {log_dir} placeholder); bus mode: the default "
             "workload's name (a built-in or one --workloads declares)")] = None,
    workloads: Annotated[Path | None, typer.Option(
        help="bus mode: TOML file declaring the workloads a request may name (MLPOWER_AGENT_WORKLOADS); "
             "without it, the built-ins only")] = None,
    out: Annotated[Path | None, typer.Option(help="output folder; the session tree goes to OUT/<session>/")] = None,
    ntp: Annotated[str | None, typer.Option(help="NTP server to check this machine's clock against")] = None,
    label: Annotated[str | None, typer.Option(help="session label (A-Z a-z 0-9 - _)")] = None,
    duration_s: Annotated[float | None, typer.Option(
        help="LoadGen min duration per run; below 600 s the run is marked non-compliant")] = None,
    loadgen_logs: Annotated[Path | None, typer.Option(
        help="where workloads write LoadGen logs (default OUT/loadgen_logs)")] = None,
    sut: Annotated[str | None, typer.Option(help="this SUT's name on the bus")] = None,
    bus: Annotated[bool, typer.Option("--bus", help="bus mode: serve RunWorkloadPhase commands over RabbitMQ")] = False,
    publish_events: Annotated[bool, typer.Option(
        "--publish-events", help="client mode: also publish workload phase events on the bus")] = False,
    allow_clock_offset: Annotated[bool, typer.Option(
        "--allow-clock-offset", help="run even when the clock offset exceeds 400 ms (non-compliant)")] = False,
    stop_server: Annotated[bool, typer.Option(
        "--stop-server", help="ask the server to exit after this session")] = False,
    http: Annotated[bool | None, typer.Option(
        "--http/--no-http", help="serve /healthz, /metrics and /status on MLPOWER_AGENT_HOST, port "
                                 "MLPOWER_AGENT_HTTP_PORT (default: on in bus mode, off in client mode)")] = None,
) -> None:
    from mlpower.cli import run

    flags = dict(locals())  # taken before the lambda, whose own locals() would be empty
    run(lambda: _agent(**flags))


def _agent(**flags: Any) -> None:
    from mlpower.cli import setup_logging
    from mlpower.settings import load_settings
    from mlpower.sut_agent.errors import AgentError
    from mlpower.sut_agent.settings import Settings

    names = ("server", "workload", "ntp", "label", "duration_s", "sut")
    overrides: dict[str, Any] = {name: flags[name] for name in names if flags[name] is not None}
    if flags["out"] is not None:
        overrides["results_dir"] = flags["out"]
    if flags["workloads"] is not None:
        overrides["workloads_file"] = flags["workloads"]
    if flags["allow_clock_offset"]:
        overrides["allow_clock_offset"] = True
    settings = load_settings(Settings, **overrides)
    setup_logging(settings.log_level)
    if not flags["bus"] and not settings.server:
        raise AgentError("give --server HOST[:PORT] (power-dev client mode) or --bus (bus mode)")
    from mlpower.sut_agent.metrics import AgentMetrics

    metrics = AgentMetrics(settings.sut)
    registry = None
    if flags["bus"]:  # read before anything listens: a bad declaration file stops the start with one line
        from mlpower.sut_agent.registry import load_registry

        registry = load_registry(settings.workloads_file)
        registry.resolve(None, settings.workload)
    serve_http = flags["bus"] if flags["http"] is None else flags["http"]
    from mlpower.readiness import subscriptions_connected

    running: list[Any] = []  # the bus-mode agent once started: /readyz asks whether it consumes
    checks = {"broker": subscriptions_connected(lambda: [s for agent in running for s in agent.subscriptions])} \
        if flags["bus"] else {}
    http = _start_http(settings, metrics, "bus" if flags["bus"] else "client", registry, checks) \
        if serve_http else None
    try:
        if flags["bus"]:
            _serve_bus(settings, metrics, registry, running)
        else:
            _client_session(settings, flags, metrics)
    finally:
        if http is not None:
            http.stop()


def _start_http(settings: Any, metrics: Any, mode: str, registry: Any, checks: Any) -> Any:
    from mlpower.http_serve import HttpServer
    from mlpower.sut_agent.app import create_app

    server = HttpServer(create_app(metrics, mode=mode, registry=registry, checks=checks), settings.http_host,
                        settings.http_port,
                        name="the agent's HTTP app", log_level=settings.log_level).start()
    typer.echo(f"agent HTTP on {server.url}", err=True)
    return server


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _client_session(settings: Any, flags: dict[str, Any], metrics: Any) -> None:
    import signal

    from mlpower.bus import connect_service
    from mlpower.sut_agent.powerdev_client import DEFAULT_PORT, ClientOptions, run_client_session
    from mlpower.sut_agent.settings import split_address
    from mlpower.sut_agent.workloads import parse_workload
    from mlpower.topology import event_key

    # SIGTERM unwinds like Ctrl-C, so the running workload's process group is stopped, not orphaned.
    signal.signal(signal.SIGTERM, _interrupt)
    host, port = split_address(settings.server, DEFAULT_PORT)
    options = ClientOptions(
        host=host, port=port, out_dir=Path(settings.results_dir), label=settings.label,
        loadgen_dir=flags["loadgen_logs"],
        ntp_host=settings.ntp, duration_s=settings.duration_s, sut=settings.sut,
        allow_clock_offset=settings.allow_clock_offset, stop_server=flags["stop_server"],
        reply_timeout_s=settings.reply_timeout_s, workload_timeout_s=settings.workload_timeout_s,
    )
    bus = None
    if flags["publish_events"]:
        bus = connect_service(settings, client_name=f"agent-{settings.sut}")
    try:
        def publish(event: Any) -> None:
            metrics.observe_phase(event)
            if bus is not None:
                bus.publish(event, event_key(event, lab=settings.lab))

        result = run_client_session(options, parse_workload(settings.workload), publish, metrics.observe_offset)
    finally:
        if bus is not None:
            bus.close()
    typer.echo(f"session {result.session_name}: {result.session_dir}")
    for outcome in result.outcomes:
        r = outcome.result
        typer.echo(f"  {outcome.mode}: {r.scenario} {r.validity} {r.metric_key}={r.metric_value} {r.metric_unit}, "
                   f"power window {r.window.duration_s:.3f} s, compliant durations: {outcome.compliant_durations}")


def _serve_bus(settings: Any, metrics: Any, registry: Any, running: list[Any]) -> None:
    import signal
    import threading

    from mlpower.bus import connect_service
    from mlpower.sut_agent.bus_mode import AgentService

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    bus = connect_service(settings, client_name=f"agent-{settings.sut}")
    service = AgentService(settings, bus, metrics, registry).start()
    running.append(service)
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        service.close()
        bus.close()
