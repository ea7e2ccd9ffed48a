"""Generate the multi-SUT Kubernetes overlay from a lab inventory.

    python deploy/k8s/generate.py deploy/k8s/overlays/multi-sut/inventory.yaml
    python deploy/k8s/generate.py --sync-base

The inventory names the lab, its images (a registry and an immutable tag), the results storage
and, per SUT, its analyzers: ``simulator`` (a WT310E simulator pod is generated next to the
director) or VISA resources / serial paths / ``ptd://`` addresses of real instruments, each one
plugged into a node (``device``: a USBTMC meter by vendor, product and serial, or a serial
adapter by path) or on the lab network. For every SUT the overlay gets one director (a
StatefulSet of one pod with its spool volume, and a Service) and, where declared, a simulator, an
in-cluster SUT agent, or for a SUT machine outside the cluster a LoadBalancer/NodePort Service
with NetworkPolicies admitting its addresses only. Prometheus' scrape configuration lists them
all. The files are written next to the inventory: ``kustomization.yaml``, ``suts.yaml``,
``prometheus.yml`` and, when an analyzer has a device, ``device-plugin.yaml`` (applied on its
own, into kube-system).

The lab's shared services scale as the inventory's ``scale`` says (defaults shown in
overlays/multi-sut/inventory.yaml): RabbitMQ as a StatefulSet of ``broker_replicas`` nodes that
find each other through the Kubernetes API (rabbitmq_peer_discovery_k8s, a headless Service,
a Role that may read its endpoints; the Erlang cookie from the credentials Secret) with the run
documents and control queues as ``queue_type`` (quorum: replicated, a node may go), and analytics
as a StatefulSet of ``analytics_replicas`` pods (each knows its index from the pod-index label and
keeps its own run table) sharing the lab's runs through the run shards.

Refused: two SUTs (or two entries) on one instrument, a USB analyzer without its vendor, product
and serial, numbered serial paths where one node has several serial analyzers, a director on
several nodes, ``latest`` images, and ReadWriteOnce results with analyzers on several nodes.

``--sync-base`` copies the files the compose lab and the Kubernetes base share (alert rules,
Grafana provisioning and dashboard) into ``base/``, because kustomize loads nothing from outside
its folder; a test fails when the copies drift.

Only PyYAML and pydantic (both dependencies of mlpower) are needed.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import yaml
from mlpower.broker_permissions import accounts
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

HERE = Path(__file__).resolve().parent
DEPLOY = HERE.parent
BASE = HERE / "base"

# base-relative copy -> the file the compose lab uses
SHARED_FILES: dict[str, Path] = {
    "prometheus/alerts.yml": DEPLOY / "prometheus" / "alerts.yml",
    "grafana/datasources/prometheus.yml": DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml",
    "grafana/dashboards/mlpower.yml": DEPLOY / "grafana" / "provisioning" / "dashboards" / "mlpower.yml",
    "grafana/mlpower-lab.json": DEPLOY / "grafana" / "dashboards" / "mlpower-lab.json",
}

SIMULATOR = "simulator"
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
QUANTITY = r"^[0-9]+(Mi|Gi|Ti)$"
PINNED_IMAGE = r"^[a-z0-9][a-z0-9.\-/:]*:[A-Za-z0-9_.\-]+(@sha256:[0-9a-f]{64})?$"  # a tag, maybe a digest
# Ports of the contract in CONTRIBUTING.md.
PORTS = {"powerdev": 4950, "director_http": 8000, "scpi": 10001, "sim_http": 8003, "agent_http": 8004,
         "amqp": 5672}
SERIAL_PATH = r"^/dev/(ttyUSB[0-9]+|ttyACM[0-9]+|serial/by-id/[A-Za-z0-9_.:+\-]+)$"
GROUP_PLUGDEV, GROUP_DIALOUT = 46, 20  # Debian's gids: USB devices (udev rule), serial adapters
DEVICE_DOMAIN = "mlpower.io"  # the device plugin's resource prefix: mlpower.io/usb-<vendor>-<product>-<serial>
DEVICE_PLUGIN_NAMESPACE = "kube-system"
DEVICE_PLUGIN_FILE = "device-plugin.yaml"
RESULTS_CLAIM = "mlpower-results"
RESULTS_ANCHOR = "analytics"  # with ReadWriteOnce results, every pod that mounts them runs beside it
RUN_SHARDS = 8  # mlpower.topology.RUN_SHARDS: the most analytics replicas that can share a lab's runs
BROKER_NODES_SERVICE = "rabbitmq-nodes"  # headless: each node's stable name, for peer discovery and clustering
BROKER_CLUSTER_CONF = "30-cluster.conf"
BROKER_PLUGINS = "enabled_plugins"
BROKER_DEFINITIONS_CONF = "40-definitions.conf"
BROKER_DEFINITIONS_DIR = "/etc/rabbitmq/definitions"  # an in-memory emptyDir the init container fills
SPOOL_DIR = "/spool"
# Requests equal to limits: Guaranteed QoS for the timing-critical sampler.
DIRECTOR_RESOURCES = {"cpu": "500m", "memory": "512Mi"}
CREDENTIALS = "mlpower-credentials"  # the Secret the operator creates (README): never generated
SECRETS_DIR = "/run/secrets/mlpower"  # where a pod finds the Secret's files: api-token, amqp-url
SELECTOR_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/instance")
RUN_AS = 10001  # the image's mlpower user (deploy/Dockerfile)
HEADER = "# GENERATED by deploy/k8s/generate.py from {inventory}: edit the inventory and rerun.\n"


class InventoryError(Exception):
    """The inventory cannot describe a lab; the message says where."""


class UsbId(BaseModel):
    """A USBTMC instrument by what it says about itself: vendor, product and serial number. The
    director's VISA resource names the same three, so it opens exactly this meter, and the device
    plugin hands over exactly its node (/dev/bus/usb/<bus>/<address>, what libusb opens)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    vendor_id: str = Field(pattern=r"^[0-9a-f]{4}$", description="idVendor, 4 lower-case hex digits (Yokogawa: 0b21)")
    product_id: str = Field(pattern=r"^[0-9a-f]{4}$", description="idProduct (WT310E: 0025)")
    serial: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$", max_length=40, description="iSerialNumber")


class Device(BaseModel):
    """Where an analyzer is plugged in, and which device node its director gets: a USBTMC meter by
    vendor, product and serial, or a serial adapter by its path (``/dev/ttyUSB<n>``, better
    ``/dev/serial/by-id/...``). A device plugin (generated ``device-plugin.yaml``) advertises each
    one as its own extended resource, so the scheduler gives each meter to one pod only."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    node: str = Field(min_length=1, description="kubernetes.io/hostname of the node the analyzer is plugged into")
    usb: UsbId | None = None
    serial_path: str | None = Field(default=None, pattern=SERIAL_PATH)
    group_id: int | None = Field(default=None, ge=0, description="group owning the device node on the node "
                                 "(default plugdev 46 for USB, dialout 20 for serial, as on Debian)")

    @model_validator(mode="after")
    def _one_kind(self) -> Device:
        if (self.usb is None) == (self.serial_path is None):
            raise ValueError("a device is either usb: {vendor_id, product_id, serial} or serial_path: /dev/...")
        return self

    @property
    def group(self) -> int:
        return self.group_id if self.group_id is not None else (GROUP_PLUGDEV if self.usb else GROUP_DIALOUT)

    @property
    def identity(self) -> tuple[str, ...]:
        """One physical device: a USB meter anywhere, a serial path on one node."""
        if self.usb is not None:
            return ("usb", self.usb.vendor_id, self.usb.product_id, self.usb.serial.lower())
        return ("serial", self.node, str(self.serial_path))

    @property
    def resource_name(self) -> str:
        """The extended resource of this device alone (``mlpower.io/usb-0b21-0025-c2ph13047v``)."""
        if self.usb is not None:
            name = f"usb-{self.usb.vendor_id}-{self.usb.product_id}-{self.usb.serial.lower()}"
        else:
            name = f"serial-{self.node}-{PurePosixPath(str(self.serial_path)).name}".lower()
        name = re.sub(r"[^a-z0-9.\-]+", "-", name).strip("-.")
        if len(name) > 63:  # a qualified name's limit: keep it unique with a digest
            name = name[:50].rstrip("-.") + "-" + hashlib.sha256(name.encode()).hexdigest()[:12]
        return f"{DEVICE_DOMAIN}/{name}"

    def plugin_entry(self) -> dict[str, Any]:
        """This device in squat/generic-device-plugin's ``--device`` syntax."""
        group: dict[str, Any]
        if self.usb is not None:
            group = {"usb": [{"vendor": self.usb.vendor_id, "product": self.usb.product_id,
                              "serial": self.usb.serial}]}
        else:
            group = {"paths": [{"path": self.serial_path}]}
        return {"name": self.resource_name.split("/", 1)[1], "groups": [{**group, "count": 1}]}


def _usb_resource_parts(resource: str) -> tuple[str, str, str] | None:
    match = re.match(r"^USB\d*::(0x[0-9A-Fa-f]+|\d+)::(0x[0-9A-Fa-f]+|\d+)::([^:]+)(::\d+)?::INSTR$", resource, re.I)
    if match is None:
        return None
    vendor, product = (f"{int(part, 0):04x}" for part in match.group(1, 2))
    return vendor, product, match.group(3)


class Analyzer(BaseModel):
    """One instrument of a SUT: ``simulator``, a VISA resource, a serial path or ptd://host:port."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    resource: str = Field(min_length=1)
    device: Device | None = None

    @model_validator(mode="after")
    def _device_matches_the_resource(self) -> Analyzer:
        usb = _usb_resource_parts(self.resource)
        if self.resource == SIMULATOR:
            if self.device is not None:
                raise ValueError("a simulated analyzer has no device")
        elif usb is not None:
            if self.device is None or self.device.usb is None:
                raise ValueError(f"{self.resource}: a USB analyzer needs device: {{node, usb: {{vendor_id, "
                                 "product_id, serial}} so its director gets exactly this meter")
            wanted = (self.device.usb.vendor_id, self.device.usb.product_id, self.device.usb.serial.lower())
            if (usb[0], usb[1], usb[2].lower()) != wanted:
                raise ValueError(f"{self.resource} is not the device {'/'.join(wanted)}")
        elif self.device is not None:
            path = self.device.serial_path
            if path is None or self.resource not in (path, f"ASRL{path}::INSTR"):
                raise ValueError(f"{self.resource}: the device must be serial_path {self.resource!r}")
        return self


class Agent(BaseModel):
    """A SUT agent running inside the cluster (a simulated SUT, or a SUT node that is a cluster node)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    node: str | None = None
    workload: str = "builtin:offline"
    duration_s: float = Field(default=600.0, gt=0)


class External(BaseModel):
    """A SUT machine outside the cluster: its agent reaches the director's power-dev port and RabbitMQ
    through a LoadBalancer or NodePort Service, admitted from these addresses only."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    addresses: list[str] = Field(min_length=1, description="the SUT's addresses, as CIDRs (192.0.2.50/32)")

    @field_validator("addresses")
    @classmethod
    def _cidrs(cls, addresses: list[str]) -> list[str]:
        networks = []
        for address in addresses:
            network = ipaddress.ip_network(address, strict=True)  # ValueError names the bad one
            if network.prefixlen < (24 if network.version == 4 else 64):
                raise ValueError(f"{address} is wider than one SUT's network (/24, /64 at most)")
            networks.append(str(network))
        return networks


class Sut(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=DNS_LABEL, max_length=40)
    analyzers: list[Analyzer] = Field(min_length=1, max_length=8)
    analyzer_name: str = Field(default="analyzer1", pattern=r"^[A-Za-z0-9_\-]+$",
                               description="the analyzer's name; with several, the director names them "
                                           "<analyzer_name>_1, _2, ...")
    agent: Agent | None = None
    external: External | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_analyzer_shorthand(cls, data: Any) -> Any:
        # `analyzer: <resource>` is short for `analyzers: [{resource: <resource>}]`
        if isinstance(data, dict) and "analyzer" in data:
            if "analyzers" in data:
                raise ValueError("give analyzer or analyzers, not both")
            data = {**data, "analyzers": [{"resource": data["analyzer"]}]}
            del data["analyzer"]
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Sut:
        if self.simulated and len(self.analyzers) > 1:
            raise ValueError("a simulated SUT has one analyzer")
        if self.agent is not None and self.external is not None:
            raise ValueError("the agent runs in the cluster (agent) or on the SUT machine (external), not both")
        nodes = {a.device.node for a in self.analyzers if a.device is not None}
        if len(nodes) > 1:
            raise ValueError(f"one director cannot sit on several nodes: {sorted(nodes)}")
        resources = [a.resource for a in self.analyzers]
        if len(set(resources)) != len(resources):
            raise ValueError("an analyzer is listed twice")
        return self

    @property
    def simulated(self) -> bool:
        return self.analyzers[0].resource == SIMULATOR

    @property
    def devices(self) -> list[Device]:
        return [a.device for a in self.analyzers if a.device is not None]

    @property
    def node(self) -> str | None:
        return self.devices[0].node if self.devices else None


class Image(BaseModel):
    """The images' registry and one immutable tag for both (scripts/image_ref.sh prints them)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    registry: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*(:[0-9]+)?(/[a-z0-9._\-]+)*$",
                          description="where make image-push put them (localhost:5000, registry.example/lab)")
    tag: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$",
                     description="an immutable tag (scripts/image_ref.sh --tag: the commit), never latest")

    @field_validator("tag")
    @classmethod
    def _immutable(cls, tag: str) -> str:
        if tag == "latest":
            raise ValueError("latest is no immutable tag: use scripts/image_ref.sh --tag (make image prints it)")
        return tag


class Storage(BaseModel):
    """The shared results volume. ReadWriteOnce works with nearly every default class: then every
    pod that writes results runs on one node. ReadWriteMany (NFS, CephFS) lets them spread."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    access_mode: Literal["ReadWriteOnce", "ReadWriteMany"] = "ReadWriteOnce"
    storage_class: str | None = Field(default=None, alias="class", pattern=DNS_SUBDOMAIN,
                                      description="omitted: the cluster's default class")
    results_size: str = Field(default="20Gi", pattern=QUANTITY)
    spool_size: str = Field(default="1Gi", pattern=QUANTITY)


class Scale(BaseModel):
    """How the lab's shared services scale: deploy/README.md (sizing a lab) says how to choose."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    broker_replicas: int = Field(default=3, ge=1, le=7, description="RabbitMQ nodes: odd, 3 survive one's loss")
    analytics_replicas: int = Field(default=2, ge=1, le=RUN_SHARDS,
                                    description="analytics pods sharing the lab's runs (at most the run shards)")
    queue_type: Literal["classic", "quorum"] = Field(default="quorum", description="MLPOWER_QUEUE_TYPE")

    @field_validator("broker_replicas")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError("an even number of RabbitMQ nodes survives no more losses than one node fewer")
        return value


class Inventory(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    lab: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    namespace: str = Field(pattern=DNS_LABEL, max_length=63)
    image: Image
    storage: Storage = Storage()
    device_plugin_image: str | None = Field(default=None, pattern=PINNED_IMAGE,
                                            description="squat/generic-device-plugin, from your registry, pinned; "
                                                        "needed once an analyzer has a device")
    sut_service_type: Literal["LoadBalancer", "NodePort"] = Field(
        default="LoadBalancer", description="how SUT machines outside the cluster reach power-dev and AMQP")
    scale: Scale = Scale()
    suts: list[Sut] = Field(min_length=1)

    @field_validator("suts")
    @classmethod
    def _unique(cls, suts: list[Sut]) -> list[Sut]:
        names = [sut.name for sut in suts]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"SUT names must be unique: {', '.join(duplicates)}")
        return suts

    @model_validator(mode="after")
    def _no_shared_instrument(self) -> Inventory:
        """Refuse every assignment that could give a director another SUT's meter."""
        owners: dict[Any, str] = {}
        for sut in self.suts:
            for analyzer in sut.analyzers:
                keys: list[Any] = [] if analyzer.resource == SIMULATOR else [("resource", analyzer.resource)]
                if analyzer.device is not None:
                    keys.append(analyzer.device.identity)
                for key in keys:
                    if key in owners and owners[key] != sut.name:
                        raise ValueError(f"{analyzer.resource} is assigned to both {owners[key]} and {sut.name}")
                    owners[key] = sut.name
        # /dev/ttyUSB<n> numbers follow plug order: with two serial adapters on a node, only by-id is exact
        serial: dict[str, list[str]] = {}
        for sut in self.suts:
            for device in sut.devices:
                if device.serial_path is not None:
                    serial.setdefault(device.node, []).append(device.serial_path)
        for node, paths in serial.items():
            numbered = [path for path in paths if not path.startswith("/dev/serial/by-id/")]
            if len(paths) > 1 and numbered:
                raise ValueError(f"node {node} has several serial analyzers: {', '.join(numbered)} may change "
                                 "places on a replug, use /dev/serial/by-id/ paths")
        if any(sut.devices for sut in self.suts):
            if self.device_plugin_image is None:
                raise ValueError("analyzers with devices need device_plugin_image "
                                 "(squat/generic-device-plugin, pinned)")
            if self.device_plugin_image.endswith(":latest"):
                raise ValueError("device_plugin_image: pin a tag or digest, not latest")
        if self.storage.access_mode == "ReadWriteOnce":
            nodes = {sut.node for sut in self.suts if sut.node is not None}
            if len(nodes) > 1:
                raise ValueError(f"analyzers on nodes {sorted(nodes)} with ReadWriteOnce results storage: every "
                                 "pod writing results must share one node; set storage: {access_mode: "
                                 "ReadWriteMany, class: <a class that serves it>}")
        return self

    @property
    def results_node(self) -> str | None:
        """With ReadWriteOnce storage: the node the analyzers pin the results' users to, if any."""
        if self.storage.access_mode != "ReadWriteOnce":
            return None
        return next((sut.node for sut in self.suts if sut.node is not None), None)

    @property
    def external_addresses(self) -> list[str]:
        return sorted({address for sut in self.suts if sut.external for address in sut.external.addresses})


def load_inventory(path: Path) -> Inventory:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InventoryError(f"{path}: {exc}") from exc
    try:
        return Inventory.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top)"
        raise InventoryError(f"{path}: {where}: {first['msg']}") from exc


# ---- manifests -------------------------------------------------------------------------------

def _labels(component: str, sut: Sut) -> dict[str, str]:
    return {"app.kubernetes.io/name": component, "app.kubernetes.io/instance": sut.name,
            "mlpower.io/sut": sut.name}


def _selector(labels: dict[str, str]) -> dict[str, str]:
    return {key: labels[key] for key in SELECTOR_LABELS}


def _scrape_annotations(port: int) -> dict[str, str]:
    # For a cluster-wide Prometheus that discovers by annotation; the lab's own uses prometheus.yml.
    return {"prometheus.io/scrape": "true", "prometheus.io/port": str(port), "prometheus.io/path": "/metrics"}


def _env(values: dict[str, str]) -> list[dict[str, Any]]:
    # The broker URL (with its password) is a file of the pod's credentials volume, never a
    # variable: a variable shows in `kubectl describe`, in /proc/<pid>/environ and in whatever the
    # process starts. Each component has its own key, so each can log in as its own broker user.
    return [{"name": "AMQP_URL_FILE", "value": f"{SECRETS_DIR}/amqp-url"}] + \
        [{"name": name, "value": value} for name, value in values.items()]


def credential_items(component: str) -> list[dict[str, str]]:
    """What a component's pod mounts of the operator's Secret: the API token and its own broker URL."""
    return [{"key": "api-token", "path": "api-token"}, {"key": f"amqp-url-{component}", "path": "amqp-url"}]


def _pod_spec(container: dict[str, Any], volumes: list[dict[str, Any]], credential: str = "") -> dict[str, Any]:
    """``credential``: whose broker URL the pod mounts (``amqp-url-<credential>``), by default the container's."""
    return {
        "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS, "runAsGroup": RUN_AS, "fsGroup": RUN_AS,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": volumes + [
            {"name": "credentials", "secret": {"secretName": CREDENTIALS, "defaultMode": 0o440,
                                               "items": credential_items(credential or container["name"])}},
            {"name": "tmp", "emptyDir": {}},
        ],
    }


def _container(name: str, args: list[str], env: dict[str, str], ports: dict[str, int],
               mounts: list[dict[str, Any]], resources: dict[str, Any] | None = None,
               ready_path: str = "/readyz") -> dict[str, Any]:
    # Readiness asks /readyz (broker subscriptions, worker): a broker outage takes the pod out of
    # its Service without a restart; liveness asks /healthz (the process serves), which every app has.
    live = {"httpGet": {"path": "/healthz", "port": "http"}}
    ready = {"httpGet": {"path": ready_path, "port": "http"}}
    return {
        "name": name,
        "image": "mlpower",
        "args": args,
        "envFrom": [{"configMapRef": {"name": "mlpower-config"}}],
        "env": _env(env),
        "ports": [{"name": port_name, "containerPort": port} for port_name, port in ports.items()],
        "readinessProbe": {**ready, "periodSeconds": 10},
        "livenessProbe": {**live, "initialDelaySeconds": 30, "periodSeconds": 30},
        "resources": resources or {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "2Gi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": mounts + [
            {"name": "credentials", "mountPath": SECRETS_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }


def _results_volume() -> list[dict[str, Any]]:
    return [{"name": "results", "persistentVolumeClaim": {"claimName": RESULTS_CLAIM}}]


def _place_with_results(pod: dict[str, Any], inventory: Inventory, pinned: bool) -> None:
    """ReadWriteOnce results: every pod that mounts them runs where analytics (their anchor) runs."""
    if inventory.storage.access_mode != "ReadWriteOnce" or pinned:
        return  # a pinned pod's node is the one the anchor is sent to (kustomization's patch)
    pod["affinity"] = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app.kubernetes.io/name": RESULTS_ANCHOR}},
         "topologyKey": "kubernetes.io/hostname"}]}}


def _deployment(name: str, labels: dict[str, str], pod: dict[str, Any], annotations: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": _selector(labels)},
                     "template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod}}}


def _service(name: str, labels: dict[str, str], ports: dict[str, int]) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": labels},
        "spec": {"selector": _selector(labels),
                 "ports": [{"name": port_name, "port": port, "targetPort": port_name}
                           for port_name, port in ports.items()]},
    }


def analyzer_resources(sut: Sut) -> list[str]:
    """What the director opens: the generated simulator's Service, or the declared instruments."""
    if sut.simulated:
        return [f"TCPIP0::analyzer-sim-{sut.name}::{PORTS['scpi']}::SOCKET"]
    return [analyzer.resource for analyzer in sut.analyzers]


def director_manifests(sut: Sut, inventory: Inventory) -> list[dict[str, Any]]:
    labels = _labels("director", sut)
    ports = {"powerdev": PORTS["powerdev"], "http": PORTS["director_http"]}
    # The sampler is timing-critical: Guaranteed QoS (requests equal limits), and each of its
    # devices as an extended resource of its own.
    devices = {device.resource_name: "1" for device in sut.devices}
    resources = {"requests": {**DIRECTOR_RESOURCES, **devices}, "limits": {**DIRECTOR_RESOURCES, **devices}}
    container = _container("director", ["director"], {
        "MLPOWER_SUT": sut.name,
        "MLPOWER_ANALYZER": ",".join(analyzer_resources(sut)),
        "MLPOWER_ANALYZER_NAME": sut.analyzer_name,
        "MLPOWER_DIRECTOR_HOST": "0.0.0.0",
        "MLPOWER_POWERDEV_PORT": str(PORTS["powerdev"]),
        "MLPOWER_DIRECTOR_HTTP_PORT": str(PORTS["director_http"]),
        # run documents the broker has not confirmed survive a restart of the pod
        "MLPOWER_SPOOL_DIR": SPOOL_DIR,
    }, ports, [{"name": "results", "mountPath": "/results"}, {"name": "spool", "mountPath": SPOOL_DIR}], resources)
    pod = _pod_spec(container, _results_volume(), credential=f"director-{sut.name}")
    if sut.node is not None:
        pod["nodeSelector"] = {"kubernetes.io/hostname": sut.node}
        pod["securityContext"]["supplementalGroups"] = sorted({device.group for device in sut.devices})
    _place_with_results(pod, inventory, pinned=sut.node is not None)
    spool_claim: dict[str, Any] = {"accessModes": ["ReadWriteOnce"],
                                   "resources": {"requests": {"storage": inventory.storage.spool_size}}}
    if inventory.storage.storage_class:
        spool_claim["storageClassName"] = inventory.storage.storage_class
    name = f"director-{sut.name}"
    # A StatefulSet, one replica: never two pods of one director, so an instrument has one owner.
    statefulset = {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name, "labels": labels},
        "spec": {"serviceName": name, "replicas": 1, "selector": {"matchLabels": _selector(labels)},
                 "template": {"metadata": {"labels": labels,
                                           "annotations": _scrape_annotations(PORTS["director_http"])},
                              "spec": pod},
                 "volumeClaimTemplates": [{"metadata": {"name": "spool"}, "spec": spool_claim}]},
    }
    manifests = [_service(name, labels, ports), statefulset]
    if sut.external is not None:
        manifests += external_director_manifests(sut, inventory)
    return manifests


def simulator_manifests(sut: Sut) -> list[dict[str, Any]]:
    labels = _labels("analyzer-sim", sut)
    ports = {"scpi": PORTS["scpi"], "http": PORTS["sim_http"]}
    container = _container("analyzer-sim", ["sim"], {
        "MLPOWER_SIM_HOST": "0.0.0.0",
        "MLPOWER_SIM_PORT": str(PORTS["scpi"]),
        "MLPOWER_SIM_CONTROL_PORT": str(PORTS["sim_http"]),
        "MLPOWER_SIM_LOAD": "follow",
        "MLPOWER_SIM_SUT": sut.name,
    }, ports, [], ready_path="/healthz")  # the simulator has no /readyz: serving is being ready
    container["image"] = "mlpower-slim"
    name = f"analyzer-sim-{sut.name}"
    return [_service(name, labels, ports),
            _deployment(name, labels, _pod_spec(container, []), _scrape_annotations(PORTS["sim_http"]))]


def agent_manifests(sut: Sut, agent: Agent, inventory: Inventory) -> list[dict[str, Any]]:
    labels = _labels("sut-agent", sut)
    ports = {"http": PORTS["agent_http"]}
    container = _container("sut-agent", ["agent", "--bus"], {
        "MLPOWER_SUT": sut.name,
        "MLPOWER_AGENT_WORKLOAD": agent.workload,
        "MLPOWER_AGENT_DURATION_S": f"{agent.duration_s:g}",
        # its director's power-dev port: the clock check (400 ms) before every phase
        "MLPOWER_AGENT_SERVER": f"director-{sut.name}:{PORTS['powerdev']}",
        "MLPOWER_AGENT_HOST": "0.0.0.0",  # the default is 127.0.0.1: the Service must reach the pod
        "MLPOWER_AGENT_HTTP_PORT": str(PORTS["agent_http"]),
    }, ports, [{"name": "results", "mountPath": "/results"}])
    container["image"] = "mlpower-slim"
    pod = _pod_spec(container, _results_volume(), credential=f"sut-agent-{sut.name}")
    if agent.node is not None:
        pod["nodeSelector"] = {"kubernetes.io/hostname": agent.node}
    _place_with_results(pod, inventory, pinned=agent.node is not None)
    name = f"sut-agent-{sut.name}"
    return [_service(name, labels, ports), _deployment(name, labels, pod, _scrape_annotations(PORTS["agent_http"]))]


def _exposed_service(name: str, labels: dict[str, str], selector: dict[str, str], port_name: str, port: int,
                     addresses: list[str], service_type: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "type": service_type,
        "selector": selector,
        "ports": [{"name": port_name, "port": port, "targetPort": port_name}],
        # the client's own address reaches the pod, so the NetworkPolicy can admit it by address
        "externalTrafficPolicy": "Local",
    }
    if service_type == "LoadBalancer":
        spec["loadBalancerSourceRanges"] = addresses
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": labels}, "spec": spec}


def _ingress_from(name: str, labels: dict[str, str], selector: dict[str, str], port: int,
                  addresses: list[str]) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name, "labels": labels},
            "spec": {"podSelector": {"matchLabels": selector}, "policyTypes": ["Ingress"],
                     "ingress": [{"from": [{"ipBlock": {"cidr": address}} for address in addresses],
                                  "ports": [{"protocol": "TCP", "port": port}]}]}}


def external_director_manifests(sut: Sut, inventory: Inventory) -> list[dict[str, Any]]:
    """power-dev of this SUT's director, reachable from the SUT's addresses only."""
    assert sut.external is not None
    labels = _labels("director", sut)
    name = f"director-{sut.name}-sut"
    return [
        _exposed_service(name, labels, _selector(labels), "powerdev", PORTS["powerdev"], sut.external.addresses,
                         inventory.sut_service_type),
        _ingress_from(name, labels, _selector(labels), PORTS["powerdev"], sut.external.addresses),
    ]


def broker_manifests(inventory: Inventory) -> list[dict[str, Any]]:
    """AMQP for the agents on SUT machines outside the cluster, from their addresses only."""
    addresses = inventory.external_addresses
    if not addresses:
        return []
    labels = {"app.kubernetes.io/name": "rabbitmq", "app.kubernetes.io/component": "sut-access"}
    selector = {"app.kubernetes.io/name": "rabbitmq"}
    return [_exposed_service("rabbitmq-suts", labels, selector, "amqp", PORTS["amqp"], addresses,
                             inventory.sut_service_type),
            _ingress_from("rabbitmq-from-suts", labels, selector, PORTS["amqp"], addresses)]


def sut_manifests(sut: Sut, inventory: Inventory) -> list[dict[str, Any]]:
    manifests = director_manifests(sut, inventory)
    if sut.simulated:
        manifests += simulator_manifests(sut)
    if sut.agent is not None:
        manifests += agent_manifests(sut, sut.agent, inventory)
    return manifests


def namespace_manifest(inventory: Inventory) -> dict[str, Any]:
    # Pod Security "restricted": no privileged pod, no hostPath, non-root only. The device plugin,
    # which must see the host's /dev, runs in its own namespace (device-plugin.yaml).
    levels = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": inventory.namespace, "labels": levels}}


def manifests(inventory: Inventory) -> list[dict[str, Any]]:
    return [namespace_manifest(inventory)] + [doc for sut in inventory.suts for doc in sut_manifests(sut, inventory)] \
        + broker_manifests(inventory) + broker_cluster_manifests(inventory) + [analytics_statefulset(inventory)]


# ---- the shared services at scale ------------------------------------------------------------


def broker_cluster_manifests(inventory: Inventory) -> list[dict[str, Any]]:
    """The broker's nodes find each other: a headless Service naming each pod, and the right to
    read its endpoints (what rabbitmq_peer_discovery_k8s asks the API for)."""
    name = "rabbitmq"
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/component": "cluster"}
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": BROKER_NODES_SERVICE, "labels": labels},
         "spec": {"clusterIP": "None", "publishNotReadyAddresses": True,
                  "selector": {"app.kubernetes.io/name": name},
                  "ports": [{"name": "epmd", "port": 4369, "targetPort": "epmd"},
                            {"name": "cluster", "port": 25672, "targetPort": "cluster"}]}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "labels": labels}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "rabbitmq-peer-discovery", "labels": labels},
         "rules": [{"apiGroups": [""], "resources": ["endpoints"], "verbs": ["get"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "rabbitmq-peer-discovery", "labels": labels},
         "subjects": [{"kind": "ServiceAccount", "name": name}],
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "rabbitmq-peer-discovery"}},
    ]


def broker_cluster_conf(inventory: Inventory) -> str:
    suffix = f".{BROKER_NODES_SERVICE}.{inventory.namespace}.svc.cluster.local"
    return "\n".join([
        "# The lab's RabbitMQ nodes find each other through the Kubernetes API (generated: the inventory's scale).",
        "cluster_formation.peer_discovery_backend = rabbit_peer_discovery_k8s",
        "cluster_formation.k8s.host = kubernetes.default.svc.cluster.local",
        "cluster_formation.k8s.address_type = hostname",
        f"cluster_formation.k8s.service_name = {BROKER_NODES_SERVICE}",
        f"cluster_formation.k8s.hostname_suffix = {suffix}",
        "cluster_formation.node_cleanup.only_log_warning = true",
        "# a node cut off from the majority stops serving rather than diverging",
        "cluster_partition_handling = pause_minority",
        "# analytics acknowledges a run's documents once the run is analysed: a run may take hours",
        "consumer_timeout = 86400000",
        "",
    ])


BROKER_PLUGINS_TEXT = "[rabbitmq_management,rabbitmq_prometheus,rabbitmq_peer_discovery_k8s].\n"


def broker_definitions_conf(inventory: Inventory) -> str:
    return "\n".join([
        "# Every account's user and permissions (mlpower.broker_permissions), made at pod start by the",
        "# broker-definitions init container from the operator's Secret: hashes only, in memory.",
        f"load_definitions = {BROKER_DEFINITIONS_DIR}/definitions.json",
        "",
    ])


def broker_secret_items(inventory: Inventory) -> list[dict[str, str]]:
    """What the broker's init container reads of the operator's Secret: the administrator and every
    account's URL (SUTs outside the cluster too: their agents log in with theirs)."""
    names = ["rabbitmq-user", "rabbitmq-password",
             *(f"amqp-url-{account}" for account in accounts(inventory.lab, [sut.name for sut in inventory.suts]))]
    return [{"key": name, "path": name} for name in names]


def _definitions_init(inventory: Inventory) -> dict[str, Any]:
    """Writes the broker's definitions before it starts, from the Secret's URLs (so a user's password
    is the one in its service's URL, and a rotated Secret takes effect at the next pod start)."""
    suts = [arg for sut in inventory.suts for arg in ("--sut", sut.name)]
    return {
        "name": "broker-definitions",
        "image": "mlpower-slim",
        "command": ["python", "-m", "mlpower.broker_definitions", "--lab", inventory.lab, *suts,
                    "--secrets", SECRETS_DIR, "--out", f"{BROKER_DEFINITIONS_DIR}/definitions.json"],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "broker-credentials", "mountPath": SECRETS_DIR, "readOnly": True},
                         {"name": "definitions", "mountPath": BROKER_DEFINITIONS_DIR}],
    }


def _broker_patch(inventory: Inventory) -> dict[str, Any]:
    namespace_env = {"name": "MY_POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}
    pod_env = {"name": "MY_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
    patch = {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "rabbitmq"},
        "spec": {"replicas": inventory.scale.broker_replicas, "podManagementPolicy": "Parallel",
                 "template": {"spec": {
                     "serviceAccountName": "rabbitmq", "automountServiceAccountToken": True,
                     "initContainers": [_definitions_init(inventory)],
                     "containers": [{
                         "name": "rabbitmq",
                         "env": [pod_env, namespace_env,
                                 {"name": "RABBITMQ_USE_LONGNAME", "value": "true"},
                                 {"name": "RABBITMQ_NODENAME", "value": "rabbit@$(MY_POD_NAME)."
                                  f"{BROKER_NODES_SERVICE}.$(MY_POD_NAMESPACE).svc.cluster.local"},
                                 {"name": "K8S_SERVICE_NAME", "value": BROKER_NODES_SERVICE},
                                 # the nodes' shared secret, from the operator's Secret (README)
                                 {"name": "RABBITMQ_ERLANG_COOKIE", "valueFrom": {
                                     "secretKeyRef": {"name": CREDENTIALS, "key": "rabbitmq-erlang-cookie"}}}],
                         "ports": [{"name": "epmd", "containerPort": 4369},
                                   {"name": "cluster", "containerPort": 25672}],
                         "volumeMounts": [
                             {"name": "config", "mountPath": f"/etc/rabbitmq/conf.d/{BROKER_CLUSTER_CONF}",
                              "subPath": BROKER_CLUSTER_CONF, "readOnly": True},
                             {"name": "config", "mountPath": f"/etc/rabbitmq/{BROKER_PLUGINS}",
                              "subPath": BROKER_PLUGINS, "readOnly": True},
                             {"name": "config", "mountPath": f"/etc/rabbitmq/conf.d/{BROKER_DEFINITIONS_CONF}",
                              "subPath": BROKER_DEFINITIONS_CONF, "readOnly": True},
                             {"name": "definitions", "mountPath": BROKER_DEFINITIONS_DIR, "readOnly": True}],
                     }],
                     "volumes": [
                         {"name": "broker-credentials", "secret": {"secretName": CREDENTIALS, "defaultMode": 0o400,
                                                                   "items": broker_secret_items(inventory)}},
                         {"name": "definitions", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}],
                 }}}}
    return {"patch": yaml.safe_dump(patch, sort_keys=False)}


def analytics_statefulset(inventory: Inventory) -> dict[str, Any]:
    """The base's analytics Deployment as a StatefulSet of ``analytics_replicas`` pods: each learns its
    index from the pod-index label (replica i of n consumes its run shards first) and keeps its own
    run table beside the others' on the results volume."""
    base = next(doc for doc in yaml.safe_load_all((BASE / "analytics.yaml").read_text(encoding="utf-8"))
                if doc["kind"] == "Deployment")
    template = json.loads(json.dumps(base["spec"]["template"]))
    container = template["spec"]["containers"][0]
    container["env"] = container.get("env", []) + [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "MLPOWER_ANALYTICS_REPLICAS", "value": str(inventory.scale.analytics_replicas)},
        {"name": "MLPOWER_ANALYTICS_REPLICA",
         "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}}},
        {"name": "MLPOWER_ANALYTICS_STORE", "value": "/results/analytics/runs-$(POD_NAME).parquet"},
    ]
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": RESULTS_ANCHOR, "labels": {"app.kubernetes.io/name": RESULTS_ANCHOR,
                                                             "app.kubernetes.io/part-of": "mlpower"}},
            "spec": {"serviceName": RESULTS_ANCHOR, "replicas": inventory.scale.analytics_replicas,
                     "podManagementPolicy": "Parallel", "selector": base["spec"]["selector"], "template": template}}


def _delete_base_analytics() -> dict[str, Any]:
    # replaced by analytics_statefulset (a patch cannot change a resource's kind)
    patch = {"$patch": "delete", "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": RESULTS_ANCHOR}}
    return {"patch": yaml.safe_dump(patch, sort_keys=False)}


def device_plugin(inventory: Inventory) -> dict[str, Any] | None:
    """squat/generic-device-plugin with one resource per analyzer device, for the nodes that carry them."""
    devices = [device for sut in inventory.suts for device in sut.devices]
    if not devices:
        return None
    args = ["--domain", DEVICE_DOMAIN]
    for device in devices:
        args += ["--device", json.dumps(device.plugin_entry(), sort_keys=True)]
    labels = {"app.kubernetes.io/name": "mlpower-device-plugin", "app.kubernetes.io/part-of": "mlpower"}
    container = {
        "name": "generic-device-plugin", "image": inventory.device_plugin_image, "args": args,
        "ports": [{"name": "http", "containerPort": 8080}],
        "resources": {"requests": {"cpu": "50m", "memory": "20Mi"}, "limits": {"memory": "40Mi"}},
        "securityContext": {"privileged": True},  # the plugin, never the director, sees the host's /dev
        "volumeMounts": [{"name": "device-plugin", "mountPath": "/var/lib/kubelet/device-plugins"},
                         {"name": "dev", "mountPath": "/dev"}],
    }
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "mlpower-device-plugin", "namespace": DEVICE_PLUGIN_NAMESPACE, "labels": labels},
        "spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": "mlpower-device-plugin"}},
                 "template": {"metadata": {"labels": labels}, "spec": {
                     "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                         "nodeSelectorTerms": [{"matchExpressions": [{
                             "key": "kubernetes.io/hostname", "operator": "In",
                             "values": sorted({device.node for device in devices})}]}]}}},
                     "priorityClassName": "system-node-critical",
                     "tolerations": [{"operator": "Exists", "effect": "NoExecute"},
                                     {"operator": "Exists", "effect": "NoSchedule"}],
                     "containers": [container],
                     "volumes": [{"name": "device-plugin", "hostPath": {"path": "/var/lib/kubelet/device-plugins"}},
                                 {"name": "dev", "hostPath": {"path": "/dev"}}]}}},
    }


# ---- Prometheus and kustomization ------------------------------------------------------------

# job name -> (which SUTs have the component, the Service name, the port)
SCRAPE_JOBS: tuple[tuple[str, Callable[[Sut], bool], str, int], ...] = (
    ("mlpower-director", lambda sut: True, "director-{sut}", PORTS["director_http"]),
    ("mlpower-analyzer-sim", lambda sut: sut.simulated, "analyzer-sim-{sut}", PORTS["sim_http"]),
    ("mlpower-sut-agent", lambda sut: sut.agent is not None, "sut-agent-{sut}", PORTS["agent_http"]),
)


def prometheus_config(inventory: Inventory, base_config: dict[str, Any]) -> dict[str, Any]:
    """The base's scrape configuration plus one job per per-SUT component."""
    jobs = []
    for job_name, present, service, port in SCRAPE_JOBS:
        targets = [f"{service.format(sut=sut.name)}:{port}" for sut in inventory.suts if present(sut)]
        if targets:
            labels = {"service": job_name.removeprefix("mlpower-")}
            jobs.append({"job_name": job_name, "static_configs": [{"targets": targets, "labels": labels}]})
    taken = {job["job_name"] for job in jobs}
    clashing = [job["job_name"] for job in base_config.get("scrape_configs", []) if job["job_name"] in taken]
    if clashing:
        raise InventoryError(f"base prometheus.yml already has jobs {clashing}")
    # every target carries the lab's name: the dashboard's lab variable, and alerts, tell labs apart
    # where one Prometheus or Grafana sees several
    labelled = []
    for job in list(base_config.get("scrape_configs", [])) + jobs:
        statics = [{**static, "labels": {**static.get("labels", {}), "lab": inventory.lab}}
                   for static in job.get("static_configs", [])]
        labelled.append({**job, "static_configs": statics} if statics else job)
    return {**base_config, "scrape_configs": labelled}


def _results_patch(inventory: Inventory) -> dict[str, Any]:
    storage = inventory.storage
    spec: dict[str, Any] = {"accessModes": [storage.access_mode],
                            "resources": {"requests": {"storage": storage.results_size}}}
    if storage.storage_class:
        spec["storageClassName"] = storage.storage_class
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": RESULTS_CLAIM}, "spec": spec}
    return {"patch": yaml.safe_dump(claim, sort_keys=False)}


def _anchor_patch(node: str) -> dict[str, Any]:
    # ReadWriteOnce results and analyzers pinned to a node: the results' anchor (analytics) goes there too
    patch = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": RESULTS_ANCHOR},
             "spec": {"template": {"spec": {"nodeSelector": {"kubernetes.io/hostname": node}}}}}
    return {"patch": yaml.safe_dump(patch, sort_keys=False)}


def kustomization(inventory: Inventory) -> dict[str, Any]:
    patches = [_results_patch(inventory)]
    if inventory.results_node is not None:
        patches.append(_anchor_patch(inventory.results_node))
    patches += [_delete_base_analytics(), _broker_patch(inventory)]
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": inventory.namespace,
        "resources": ["../../base", "suts.yaml"],
        "images": [{"name": name, "newName": f"{inventory.image.registry}/{name}", "newTag": inventory.image.tag}
                   for name in ("mlpower", "mlpower-slim")],
        "configMapGenerator": [
            {"name": "mlpower-config", "behavior": "merge",
             "literals": [f"MLPOWER_LAB={inventory.lab}", f"MLPOWER_QUEUE_TYPE={inventory.scale.queue_type}"]},
            {"name": "prometheus-config", "behavior": "merge", "files": ["prometheus.yml"]},
            {"name": "rabbitmq-config", "behavior": "merge", "files": [BROKER_CLUSTER_CONF, BROKER_PLUGINS,
                                                                          BROKER_DEFINITIONS_CONF]},
        ],
        "patches": patches,
    }


def _dump_all(docs: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False, width=120)


def render(inventory: Inventory, inventory_name: str = "inventory.yaml") -> dict[str, str]:
    """The overlay's files, by name: pure, so a test compares them with what is committed."""
    header = HEADER.format(inventory=inventory_name)
    base_config = yaml.safe_load((BASE / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    files = {
        "kustomization.yaml": header + _dump_all([kustomization(inventory)]),
        "suts.yaml": header + _dump_all(manifests(inventory)),
        "prometheus.yml": header + _dump_all([prometheus_config(inventory, base_config)]),
        BROKER_CLUSTER_CONF: header + broker_cluster_conf(inventory),
        BROKER_PLUGINS: f"%% {header.strip().lstrip('# ')}\n" + BROKER_PLUGINS_TEXT,
        BROKER_DEFINITIONS_CONF: header + broker_definitions_conf(inventory),
    }
    plugin = device_plugin(inventory)
    if plugin is not None:
        # applied on its own (kubectl apply -f): privileged, in its own namespace, outside the
        # lab's "restricted" one; kustomize would move it into the lab's namespace
        files[DEVICE_PLUGIN_FILE] = header + _dump_all([plugin])
    return files


def write(inventory_path: Path, out_dir: Path | None = None) -> list[Path]:
    out = out_dir or inventory_path.parent
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render(load_inventory(inventory_path), inventory_path.name).items():
        (out / name).write_text(text, encoding="utf-8")
        written.append(out / name)
    return written


def sync_base(base: Path = BASE) -> list[Path]:
    """Copy the files shared with the compose lab into the base; returns those that changed."""
    changed = []
    for relative, source in SHARED_FILES.items():
        target = base / relative
        if not target.exists() or target.read_bytes() != source.read_bytes():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            changed.append(target)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inventory", nargs="?", type=Path, help="the lab inventory (YAML)")
    parser.add_argument("--out", type=Path, help="overlay folder (default: the inventory's folder)")
    parser.add_argument("--sync-base", action="store_true", help="copy shared Prometheus/Grafana files into base/")
    args = parser.parse_args(argv)
    if args.inventory is None and not args.sync_base:
        parser.error("give an inventory, --sync-base, or both")
    try:
        if args.sync_base:
            for path in sync_base():
                print(f"updated {path}")
        if args.inventory is not None:
            for path in write(args.inventory, args.out):
                print(f"wrote {path}")
    except InventoryError as exc:
        print(f"generate.py: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
