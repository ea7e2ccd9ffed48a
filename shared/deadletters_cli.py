"""``mlpower deadletters``: show (and with ``--drain`` take off) the lab's dead-letter queue.

Each message is shown with its reason header (what failed: decode, handler, or the broker's own
reason), where it was going and a short, escaped start of its body: dead letters come from
anyone who can publish, so nothing of them reaches the terminal unescaped.
"""

from __future__ import annotations

from typing import Annotated

import typer

DEFAULT_LIMIT = 100
PREVIEW_BYTES = 200  # what a line shows of a body; the rest is not kept, however many letters are read


def deadletters(
    drain: Annotated[bool, typer.Option("--drain", help="take them off the queue (default: only show)")] = False,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="at most this many messages")] = DEFAULT_LIMIT,
) -> None:
    """Show the lab's dead letters (MLPOWER_LAB on AMQP_URL) with each one's reason; --drain removes them."""
    from mlpower.cli import run

    run(lambda: _show(drain, limit))


def _show(drain: bool, limit: int) -> None:
    from mlpower import topology
    from mlpower.bus import connect_service
    from mlpower.errors import SettingsError
    from mlpower.logtext import client_text
    from mlpower.settings import ServiceSettings, load_settings

    settings = load_settings(ServiceSettings)
    if settings.bus != "rabbitmq":
        raise SettingsError("invalid setting MLPOWER_BUS: dead letters live on RabbitMQ (MLPOWER_BUS=rabbitmq)")
    bus = connect_service(settings, client_name="mlpower-deadletters")
    try:
        depth = bus.dead_letter_depth()
        letters = bus.dead_letters(limit, keep=not drain, preview_bytes=PREVIEW_BYTES)
    finally:
        bus.close()
    queue = topology.dead_letter_queue(settings.lab)
    for number, letter in enumerate(letters, 1):
        typer.echo(f"{number}. {client_text(letter.exchange)} {client_text(letter.routing_key)}")
        typer.echo(f"   reason: {client_text(letter.reason, 500)}")
        typer.echo(f"   body ({letter.size_bytes} bytes): {client_text(letter.body, PREVIEW_BYTES)}")
    shown = f"{len(letters)} of {depth}" if depth > len(letters) else str(len(letters))
    what = "taken off" if drain else "shown, kept (--drain takes them off)"
    typer.echo(f"{shown} dead letter(s) in {queue}: {what}")
