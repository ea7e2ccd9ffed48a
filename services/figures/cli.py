"""``mlpower figures``: build, audit, download, run figures and serve (heavy imports inside commands)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="figures",
    help="Build, audit and serve the MLPerf Power paper figures.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DataOption = Annotated[Path | None, typer.Option("--data-dir", help="the public CSVs (default: MLPOWER_DATA_DIR)")]


def _settings():
    from mlpower.settings import load_settings

    from .settings import FiguresSettings

    return load_settings(FiguresSettings)


def _names(only: str) -> list[str]:
    return [name.strip() for name in only.split(",") if name.strip()]


@app.command("build")
def build_command(
    out: Annotated[Path, typer.Option("--out", help="folder for <figure>.png/.svg/.json")],
    mode: Annotated[
        str,
        typer.Option("--mode", help="paper (reproduces upstream), corrected, or both (into OUT/paper, OUT/corrected)"),
    ] = "paper",
    only: Annotated[str, typer.Option("--only", help="comma-separated figures, e.g. fig5a,fig8")] = "",
    data_dir: DataOption = None,
    force: Annotated[bool, typer.Option("--force", help="re-render even when the inputs did not change")] = False,
    workers: Annotated[int | None, typer.Option("--workers", help="rendering processes (default 2)")] = None,
) -> None:
    """Render the figures into OUT; unchanged figures are not re-rendered."""
    from mlpower.cli import run

    def body() -> None:
        from .build import build

        settings = _settings()
        targets = [("paper", out / "paper"), ("corrected", out / "corrected")] if mode == "both" else [(mode, out)]
        for target_mode, folder in targets:
            report = build(
                folder,
                data_dir or settings.data_dir,
                mode=target_mode,
                only=_names(only),
                force=force,
                workers=workers if workers is not None else settings.workers,
            )
            typer.echo(
                f"{target_mode}: rendered {len(report.rendered)} ({', '.join(report.rendered) or '-'}), "
                f"unchanged {len(report.unchanged)}, {report.seconds:.2f} s -> {folder}"
            )

    run(body)


@app.command("audit")
def audit_command(
    out: Annotated[Path, typer.Option("--out", help="the report: .json, or .md for Markdown")] = Path(
        "figures-audit.json"
    ),
    only: Annotated[str, typer.Option("--only", help="comma-separated figures")] = "",
    data_dir: DataOption = None,
) -> None:
    """Print why paper and corrected mode differ (80 columns); write every differing value with its causes and rows."""
    from mlpower.cli import run

    def body() -> None:
        from .audit import audit, summary_text, write_audit

        report = audit(data_dir or _settings().data_dir, _names(only))
        write_audit(report, out)
        typer.echo(summary_text(report, out), nl=False)

    run(body)


@app.command("download")
def download_command(
    cache: Annotated[
        Path | None, typer.Option("--cache", help="where to store the CSVs (MLPOWER_FIGURES_CACHE)")
    ] = None,
    url: Annotated[str | None, typer.Option("--url", help="base URL (MLPOWER_FIGURES_SOURCE_URL)")] = None,
) -> None:
    """Fetch the public CSVs into a cache, checking their SHA-256; then point MLPOWER_DATA_DIR at it."""
    from mlpower.cli import run

    def body() -> None:
        from .download import download

        settings = _settings()
        report = download(cache or settings.cache_dir, url or settings.source_url)
        typer.echo(
            f"fetched {len(report.fetched)}, already cached {len(report.cached)} -> {report.cache_dir}\n"
            f"use it with: MLPOWER_DATA_DIR={report.cache_dir}"
        )

    run(body)


@app.command("run")
def run_command(
    documents: Annotated[
        Path, typer.Argument(help="a run folder, its documents.jsonl, or a samples .parquet")
    ],
    out: Annotated[Path, typer.Option("--out", help="folder for the run's figures")] = Path("."),
    analysis: Annotated[
        Path | None,
        typer.Option(help="the run's analysis (compliance.json, mlpower check --json); default: beside the documents"),
    ] = None,
    efficiency: Annotated[
        float | None, typer.Option(help="an efficiency to use instead of the run's own analysis")
    ] = None,
    efficiency_unit: Annotated[str, typer.Option(help="samples/J or J/token (with --efficiency)")] = "samples/J",
    scenario: Annotated[str, typer.Option(help="the run's scenario when the input does not say")] = "",
    data_dir: DataOption = None,
) -> None:
    """Render one run's power trace and, with its efficiency (from its analysis), its place among the public results."""
    from mlpower.cli import run

    def body() -> None:
        from mlpower.schema import RunSummary

        from .errors import FiguresError
        from .runfigs import render_run_figures
        from .runpaths import DOCUMENTS_FILE

        path = documents / DOCUMENTS_FILE if documents.is_dir() else documents
        if not path.is_file():
            raise FiguresError(f"{path}: no such file (give a run folder, its {DOCUMENTS_FILE} or a samples .parquet)")
        summary = None
        if efficiency is not None:
            summary = RunSummary(
                run_id=path.parent.name,
                source="command line",
                method="given on the command line",
                scenario=scenario,
                efficiency=efficiency,
                efficiency_unit=efficiency_unit,
            )
        written = render_run_figures(
            path, out, summary=summary, analysis=analysis, data_dir=data_dir or _settings().data_dir
        )
        for file in written["files"]:
            typer.echo(file)
        if "efficiency" in written:
            e = written["efficiency"]
            typer.echo(f"efficiency {e['value']:g} {e['unit']} from {e['from']}", err=True)
        for note in written["notes"]:
            typer.echo(f"note: {note}", err=True)

    run(body)


@app.command("serve")
def serve_command(
    port: Annotated[int | None, typer.Option(help="HTTP port (MLPOWER_FIGURES_PORT, default 8002)")] = None,
    no_bus: Annotated[bool, typer.Option("--no-bus", help="HTTP only: do not listen for run-analyzed events")] = False,
) -> None:
    """Serve the figures over HTTP and rebuild them on run-analyzed events and rebuild commands."""
    from mlpower.cli import run

    def body() -> None:
        import signal
        import threading

        from mlpower.bus import connect_service
        from mlpower.cli import setup_logging
        from mlpower.http_serve import HttpServer

        from .app import create_app
        from .service import FiguresService

        settings = _settings()
        setup_logging(settings.log_level)
        # the HTTP server runs in a thread (see mlpower.http_serve): this thread owns the signals
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        bus = None if no_bus else connect_service(settings, client_name="mlpower-figures")
        service = FiguresService(
            settings.data_dir,
            settings.out_root,
            results_dir=settings.results_dir,
            workers=settings.workers,
            bus=bus,
            lab=settings.lab,
        )
        server = None
        try:
            if bus is not None:
                service.listen(settings.instance)
            server = HttpServer(create_app(service, api_token=settings.api_token), settings.http_host,
                                port if port is not None else settings.http_port, name="figures",
                                log_level=settings.log_level).start()
            typer.echo(f"figures HTTP on {server.url}", err=True)
            server.wait(stop)
        finally:
            if server is not None:
                server.stop()
            service.close()
            if bus is not None:
                bus.close()

    run(body)
