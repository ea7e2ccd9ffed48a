"""A service opened to the network has a token, and every server listens where it is told, IPv6 too."""

from __future__ import annotations

import socket

import pytest
from mlpower.analytics.settings import AnalyticsSettings
from mlpower.analyzer_sim.settings import Settings as SimulatorSettings
from mlpower.director.cli import serving_text
from mlpower.director.settings import DirectorSettings
from mlpower.errors import SettingsError
from mlpower.figures.settings import FiguresSettings
from mlpower.listen import ListenError, listen, url_host
from mlpower.settings import ServiceSettings, is_loopback, load_settings
from mlpower.sut_agent.settings import Settings as AgentSettings

SERVICES: list[type[ServiceSettings]] = [AnalyticsSettings, SimulatorSettings, DirectorSettings, FiguresSettings,
                                         AgentSettings]
TOKEN = "b7c1d0f4a2e94c3f8e6a5d2c1b0a9f8e"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for cls in SERVICES:
        alias = cls.model_fields[cls.HTTP_HOST_FIELD].validation_alias
        monkeypatch.delenv(str(alias), raising=False)
    for name in ("MLPOWER_API_TOKEN", "MLPOWER_API_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("cls", SERVICES, ids=lambda c: c.__module__.split(".")[1])
@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.5", "::", "lab-host.example"])
def test_a_network_address_without_a_token_is_refused(cls: type[ServiceSettings], host: str) -> None:
    alias = str(cls.model_fields[cls.HTTP_HOST_FIELD].validation_alias)
    with pytest.raises(SettingsError) as refused:
        load_settings(cls, bus="memory", **{cls.HTTP_HOST_FIELD: host})
    message = str(refused.value)
    assert f"listening on {host} ({alias})" in message and "MLPOWER_API_TOKEN" in message
    assert "Value error" not in message
    opened = load_settings(cls, bus="memory", api_token=TOKEN, **{cls.HTTP_HOST_FIELD: host})
    assert getattr(opened, cls.HTTP_HOST_FIELD) == host


@pytest.mark.parametrize("cls", SERVICES, ids=lambda c: c.__module__.split(".")[1])
@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_needs_no_token(cls: type[ServiceSettings], host: str) -> None:
    settings = load_settings(cls, bus="memory", **{cls.HTTP_HOST_FIELD: host})
    assert is_loopback(getattr(settings, cls.HTTP_HOST_FIELD)) and not settings.api_token


def test_every_service_names_its_http_host_field() -> None:
    for cls in SERVICES:
        assert cls.HTTP_HOST_FIELD in cls.model_fields, cls


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "[::1]"])
def test_listen_follows_the_address_family(host: str) -> None:
    sock = listen(host, 0, backlog=4, what="test server")
    try:
        port = sock.getsockname()[1]
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        assert sock.family == family
        with socket.create_connection((host.strip("[]"), port), timeout=2):
            pass
    finally:
        sock.close()


def test_listen_names_what_could_not_listen_where() -> None:
    held = listen("127.0.0.1", 0, backlog=1, what="first")
    try:
        port = held.getsockname()[1]
        with pytest.raises(ListenError, match=rf"^second cannot listen on 127\.0\.0\.1:{port}: "):
            listen("127.0.0.1", port, backlog=1, what="second")
    finally:
        held.close()
    with pytest.raises(ListenError, match=r"^third cannot listen on 203\.0\.113\.9:0: "):
        listen("203.0.113.9", 0, backlog=1, what="third")  # TEST-NET-3: no interface of this machine has it



@pytest.mark.parametrize("host, shown", [("127.0.0.1", "127.0.0.1"), ("::1", "[::1]"), ("[::1]", "[::1]"),
                                         ("0.0.0.0", "0.0.0.0"), ("lab.example", "lab.example"), ("[::]", "[::]")])
def test_an_address_shows_ipv6_in_one_pair_of_brackets(host: str, shown: str) -> None:
    assert url_host(host) == shown
    settings = load_settings(DirectorSettings, host=host, api_token="t" * 40)
    assert f"http://{shown}:8000 " in serving_text(settings, 4950, 8000, bus=False)
