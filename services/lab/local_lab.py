"""``mlpower lab up|run|down``: the compose lab as local processes on RabbitMQ.

``up`` starts every mlpower service of ``deploy/compose.yaml`` with the command and environment
its container gets (see ``compose_local``), in dependency order, each waited for on its health
check; ``run`` (``run_client``) starts a measurement through the director's HTTP API, follows it,
and prints the analyzed summary; ``down`` stops what ``up`` started, from any directory
(``where``). RabbitMQ is the one from ``AMQP_URL``.

Secure by default: every service listens on 127.0.0.1 (``MLPOWER_BIND_ADDRESS`` opens the lab
to a network on purpose), and ``up`` gives the lab a random API token and its own broker account
(``credentials``), stored under the lab folder with mode 0600, where ``run`` and ``down`` find them.
The services read both from files; neither reaches them, or their workloads, as a variable.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlpower.lab import credentials, procs
from mlpower.lab.compose_local import LocalService, load_compose, local_services, read_env_file, secret_values
from mlpower.lab.credentials import LabCredentials
from mlpower.lab.errors import LabError
from mlpower.lab.settings import LabSettings
from mlpower.lab.where import find_lab
from mlpower.settings import load_settings

ONE_SHOT = {"lab-run"}  # compose's own demo trigger; `mlpower lab run` is its local counterpart
SECRET_VARIABLES = ("MLPOWER_API_TOKEN", "RABBITMQ_PASSWORD")
"""Compose variables holding secrets: taken from the user (environment, --env-file), never from the example."""


def _settings(workdir: Path | None) -> LabSettings:
    overrides: dict[str, Any] = {"workdir": workdir} if workdir is not None else {}
    return load_settings(LabSettings, **overrides)


def _user_variables(env_file: Path | None) -> dict[str, str]:
    """What the user set: the environment, over an --env-file they named (the example's values are defaults only)."""
    return {**(read_env_file(env_file) if env_file is not None else {}), **os.environ}


def plan(settings: LabSettings, env_file: Path | None = None, *, secrets: dict[str, str] | None = None,
         bind_address: str = "127.0.0.1") -> dict[str, LocalService]:
    """The compose file's services as local processes; ``secrets`` fill the compose variables holding them."""
    example = settings.compose_file.parent / ".env.example"
    variables = {**read_env_file(env_file or example), **os.environ, **(secrets or {})}
    config = load_compose(settings.compose_file, variables)
    services = local_services(config, settings.workdir.resolve(), secret_values(config, variables),
                              overrides={"AMQP_URL": settings.amqp_url}, bind_address=bind_address,
                              port_offset=settings.port_offset)
    return {name: service for name, service in services.items() if name not in ONE_SHOT}


def broker_account(service: LocalService) -> str:
    """The compose service's account in ``mlpower.broker_permissions`` (per SUT: the director's and the agent's)."""
    sut = service.env.get("MLPOWER_SUT") or service.env.get("MLPOWER_SIM_SUT", "")
    return f"{service.name}-{sut}" if service.name in ("director", "sut-agent") else service.name


def _with_credentials(service: LocalService, creds: LabCredentials) -> LocalService:
    """The service's own broker URL from its 0600 file instead of a variable (never the admin
    account of AMQP_URL, nor another service's rights)."""
    env = {key: value for key, value in service.env.items() if key != "AMQP_URL"}
    env["AMQP_URL_FILE"] = str(creds.service_url_path(broker_account(service)).resolve())
    return LocalService(service.name, service.argv, env, service.health_url, service.depends_on)


def lab_up(workdir: Path | None = None, env_file: Path | None = None) -> Iterator[str]:
    settings = _settings(workdir)
    if any(procs.alive(s.pid) for s in procs.load_state(settings.workdir)):
        raise LabError(f"a lab is already up in {settings.workdir}: run 'mlpower lab down' first")
    given = _user_variables(env_file)
    bind_address = given.get("MLPOWER_BIND_ADDRESS") or settings.bind_address
    settings = settings.model_copy(update={"bind_address": bind_address})
    _private_folder(settings.workdir)
    started: list[procs.Started] = []
    creds: LabCredentials | None = None
    try:
        creds = credentials.ensure(settings.workdir, lab=settings.lab, admin_url=settings.amqp_url,
                                   account=settings.broker_account, rabbitmqctl=settings.rabbitmqctl, given=given,
                                   sut=given.get("MLPOWER_SUT") or settings.sut)
        secrets = {"MLPOWER_API_TOKEN": creds.api_token, "RABBITMQ_USER": creds.broker_user,
                   "RABBITMQ_PASSWORD": creds.broker_password or "unused"}
        for service in plan(settings, env_file, secrets=secrets, bind_address=bind_address).values():
            service = _with_credentials(service, creds)
            if service.health_url and procs.healthy(service.health_url):
                raise LabError(f"{service.health_url} already answers: another lab or service holds "
                               f"{service.name}'s port; stop it first")
            handle = procs.start(service.name, service.argv, service.env, settings.workdir / "logs",
                                 service.health_url)
            started.append(handle)
            procs.save_state(settings.workdir, started)
            procs.wait_healthy(handle)
            yield f"{service.name}: up (pid {handle.pid}, {service.health_url or 'no health check'}, log {handle.log})"
    except BaseException:
        for handle in reversed(started):
            procs.stop(handle.pid)
        procs.clear_state(settings.workdir)
        if creds is not None and creds.created_user:
            credentials.forget_broker_user(settings.workdir)
        raise
    yield from _how_to_use(settings, creds, len(started))


def _private_folder(workdir: Path) -> None:
    """The lab folder holds secrets, logs and run trees: this user's only, and never committed."""
    workdir.mkdir(parents=True, exist_ok=True)
    workdir.chmod(0o700)
    ignore = workdir / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# mlpower lab up: secrets, logs and run trees; never commit them\n*\n", encoding="utf-8")


def _how_to_use(settings: LabSettings, creds: LabCredentials, count: int) -> Iterator[str]:
    if settings.loopback_only:
        yield f"listening on {settings.bind_address} only (MLPOWER_BIND_ADDRESS opens the lab to a network)"
    else:
        yield (f"WARNING: listening on {settings.bind_address}: reachable from the network; the API token guards "
               "the control endpoints, reading endpoints and the simulator's SCPI port are open to anyone there")
    yield (f"API token: {creds.token_path} (mode 0600); e.g. curl -H \"Authorization: Bearer $(cat "
           f"{creds.token_path})\" ...; 'mlpower lab run' finds it there")
    account = (f"the lab's own user {creds.broker_user}, password in {creds.password_path} (mode 0600)"
               if creds.created_user else f"AMQP_URL's own account ({creds.broker_user})")
    own = (f"each service logs in as its own user with only its rights, URL in {creds.folder}/amqp_url_<account>"
           if creds.service_accounts else f"the services read their URL from {creds.amqp_url_path}")
    yield f"broker: {account}; {own}"
    yield f"lab up: {count} services; 'mlpower lab run' starts a measurement, 'mlpower lab down' stops them"


def lab_down(workdir: Path | None = None) -> Iterator[str]:
    settings = _settings(workdir)
    try:
        folder = find_lab(settings.workdir)
    except LabError as exc:
        yield str(exc)
        return
    settings = settings.model_copy(update={"workdir": folder})
    started = procs.load_state(settings.workdir)
    if not started:
        yield f"no lab is up in {settings.workdir}"
    for handle in reversed(started):
        procs.stop(handle.pid)
        yield f"{handle.name}: stopped"
    procs.clear_state(settings.workdir)
    user = credentials.forget_broker_user(settings.workdir)  # also after a lab that died on its own
    if user is not None:
        yield f"broker user {user}: deleted"
