"""deploy/k8s: `kubectl kustomize` of base and overlay against the Kubernetes schemas, and the
inventory generator (inventory -> manifests, Prometheus targets, kustomization)."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from .conftest import DEPLOY, DeployTools

K8S = DEPLOY / "k8s"
OVERLAY = K8S / "overlays" / "multi-sut"
KUBERNETES_VERSION = "1.30.0"  # oldest Kubernetes still in wide use; the manifests use nothing newer



def _load_generator() -> Any:
    # deploy/ is no package: load the script by path, as a user runs it
    spec = importlib.util.spec_from_file_location("mlpower_k8s_generate", K8S / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the models' annotations through it
    spec.loader.exec_module(module)
    return module


gen = _load_generator()


@cache
def build(kubectl: Path, folder: Path) -> tuple[dict[str, Any], ...]:
    result = subprocess.run([str(kubectl), "kustomize", str(folder)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def validate(doc: dict[str, Any]) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def by_kind(docs: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


OVERLAYS = sorted(path.parent for path in (K8S / "overlays").glob("*/kustomization.yaml"))


@pytest.mark.parametrize("folder", [K8S / "base", *OVERLAYS], ids=["base", *(o.name for o in OVERLAYS)])
def test_kustomize_output_passes_the_kubernetes_schemas(deploy_tools: DeployTools, folder: Path) -> None:
    docs = build(deploy_tools.kubectl, folder)
    assert len(docs) > 5
    for doc in docs:
        validate(doc)
    for plugin in folder.glob("device-plugin.yaml"):  # applied on its own, next to the overlay
        for doc in yaml.safe_load_all(plugin.read_text(encoding="utf-8")):
            validate(doc)


def test_the_schema_check_rejects_a_broken_manifest(deploy_tools: DeployTools) -> None:
    import kubernetes_validate

    deployment = dict(by_kind(build(deploy_tools.kubectl, OVERLAY), "StatefulSet")["director-sim-a"])
    broken_spec = {**deployment["spec"], "replica": 1}  # misspelt field: only a strict check sees it
    with pytest.raises(kubernetes_validate.ValidationError):
        validate({**deployment, "spec": broken_spec})


def test_overlay_is_what_the_generator_makes_of_its_inventory() -> None:
    rendered = gen.render(gen.load_inventory(OVERLAY / "inventory.yaml"))
    for name, text in rendered.items():
        assert (OVERLAY / name).read_text(encoding="utf-8") == text, f"{name} is stale: rerun deploy/k8s/generate.py"


def test_base_copies_of_the_compose_lab_files_are_in_sync(tmp_path: Path) -> None:
    for relative, source in gen.SHARED_FILES.items():
        assert (K8S / "base" / relative).read_bytes() == source.read_bytes(), \
            f"{relative} differs from {source}: run deploy/k8s/generate.py --sync-base"
    # and sync_base really repairs a drifted copy
    base = tmp_path / "base"
    shutil.copytree(K8S / "base", base)
    (base / "prometheus" / "alerts.yml").write_text("groups: []\n")
    assert gen.sync_base(base) == [base / "prometheus" / "alerts.yml"]
    assert gen.sync_base(base) == []


def test_every_reference_in_the_overlay_resolves(deploy_tools: DeployTools) -> None:
    docs = build(deploy_tools.kubectl, OVERLAY)
    namespace = gen.load_inventory(OVERLAY / "inventory.yaml").namespace
    assert all(doc["metadata"].get("namespace") == namespace for doc in docs if doc["kind"] != "Namespace")
    config_maps, claims = by_kind(docs, "ConfigMap"), by_kind(docs, "PersistentVolumeClaim")
    workloads = list(by_kind(docs, "Deployment").values()) + list(by_kind(docs, "StatefulSet").values())
    templates = {doc["metadata"]["name"]: doc["spec"]["template"] for doc in workloads}
    for service in by_kind(docs, "Service").values():
        selector = service["spec"]["selector"]
        matched = [name for name, template in templates.items()
                   if selector.items() <= template["metadata"]["labels"].items()]
        assert len(matched) == 1, f"Service {service['metadata']['name']} selects {matched}"
        ports = {port["name"] for c in templates[matched[0]]["spec"]["containers"] for port in c.get("ports", [])}
        assert {port["targetPort"] for port in service["spec"]["ports"]} <= ports
    for name, template in templates.items():
        pod = template["spec"]
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps, (name, volume)
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, (name, volume)
            if "secret" in volume:
                assert volume["secret"]["secretName"] == "mlpower-credentials"  # created by the operator
        for container in pod["containers"]:
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in config_maps, (name, source)


def test_prometheus_scrapes_every_service_of_the_overlay(deploy_tools: DeployTools, tmp_path: Path) -> None:
    docs = build(deploy_tools.kubectl, OVERLAY)
    config_map = next(doc for doc in docs if doc["kind"] == "ConfigMap"
                      and doc["metadata"]["name"].startswith("prometheus-config"))
    config = yaml.safe_load(config_map["data"]["prometheus.yml"])
    services = {name: {port["port"] for port in doc["spec"]["ports"]}
                for name, doc in by_kind(docs, "Service").items()}
    scraped = {target for job in config["scrape_configs"] for static in job["static_configs"]
               for target in static["targets"]} - {"localhost:9090"}
    for target in scraped:
        host, port = target.rsplit(":", 1)
        assert int(port) in services.get(host, set()), f"{target} is no Service port of the overlay"
    http_services = {name for name, ports in services.items() if ports & {8000, 8001, 8002, 8003, 8004}}
    assert {target.rsplit(":", 1)[0] for target in scraped} >= http_services
    # the ConfigMap as Prometheus mounts it is a configuration promtool accepts
    for key, text in config_map["data"].items():
        (tmp_path / key).write_text(text)
    result = subprocess.run([str(deploy_tools.promtool), "check", "config", str(tmp_path / "prometheus.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# ---- policy: what a real cluster needs of every overlay ------------------------------------------

def _pods(docs: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(doc["metadata"]["name"], doc["spec"]["template"]["spec"]) for doc in docs
            if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet")]


def _env_of(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item.get("value", "") for item in container.get("env", [])}


def policy_violations(docs: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> list[str]:
    """Non-root, pinned images, requests and limits, a spool for every director, an agent server
    for every agent, no device shared across SUTs, restricted namespaces, exposure by address."""
    found: list[str] = []
    services = by_kind(tuple(docs), "Service")
    device_owners: dict[str, set[str]] = {}
    for name, pod in _pods(docs):
        security = pod.get("securityContext", {})
        for container in pod["containers"]:
            where = f"{name}/{container['name']}"
            context = container.get("securityContext", {})
            if not (security.get("runAsNonRoot") or context.get("runAsNonRoot")) \
                    or 0 in (security.get("runAsUser"), context.get("runAsUser")):
                found.append(f"{where}: may run as root")
            if context.get("privileged") or context.get("allowPrivilegeEscalation", True):
                found.append(f"{where}: privileged or may escalate")
            image = container["image"]
            repository, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "")
            if not tag or tag == "latest":
                found.append(f"{where}: image {image} has no immutable tag")
            if container["image"].split("/")[-1].startswith("mlpower") and "/" not in repository:
                found.append(f"{where}: image {image} names no registry")
            resources = container.get("resources", {})
            requests, limits = resources.get("requests", {}), resources.get("limits", {})
            if not {"cpu", "memory"} <= set(requests) or "memory" not in limits:
                found.append(f"{where}: requests (cpu, memory) and a memory limit are not all set")
            args = container.get("args", [])
            env = _env_of(container)
            if image.rsplit("/", 1)[-1].startswith("mlpower") and ("AMQP_URL" in env or "AMQP_URL_FILE" not in env):
                found.append(f"{where}: the broker URL is not a file of its own (AMQP_URL_FILE)")
            sut = pod.get("nodeSelector", {}).get("mlpower.io/sut") or env.get("MLPOWER_SUT", "")
            for resource in resources.get("limits", {}):
                if "/" in resource:
                    device_owners.setdefault(resource, set()).add(sut)
            if args[:1] == ["director"]:
                doc = next(d for d in docs if d["metadata"]["name"] == name and d["kind"] != "Service")
                claims = {t["metadata"]["name"] for t in doc["spec"].get("volumeClaimTemplates", [])}
                spool = env.get("MLPOWER_SPOOL_DIR")
                mounted = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
                if doc["kind"] != "StatefulSet" or not spool or mounted.get(spool) not in claims:
                    found.append(f"{where}: director without a spool volume of its own")
                if (doc["kind"] == "StatefulSet" and doc["spec"].get("replicas") != 1):
                    found.append(f"{where}: more than one pod per instrument")
            if args[:1] == ["agent"]:
                server = env.get("MLPOWER_AGENT_SERVER", "")
                host, _, port = server.partition(":")
                ports = {p["port"] for p in services.get(host, {}).get("spec", {}).get("ports", [])}
                if host != f"director-{env.get('MLPOWER_SUT')}" or int(port or 0) not in ports:
                    found.append(f"{where}: agent without its director's power-dev address ({server!r})")
    found += literal_secrets(docs)
    for resource, owners in device_owners.items():
        if len(owners) > 1:
            found.append(f"device resource {resource} shared by SUTs {sorted(owners)}")
    for namespace in by_kind(tuple(docs), "Namespace").values():
        labels = namespace["metadata"].get("labels", {})
        if labels.get("pod-security.kubernetes.io/enforce") != "restricted":
            found.append(f"namespace {namespace['metadata']['name']}: Pod Security not enforced as restricted")
    admitted = {block["ipBlock"]["cidr"] for policy in by_kind(tuple(docs), "NetworkPolicy").values()
                for rule in policy["spec"].get("ingress", []) for block in rule.get("from", []) if "ipBlock" in block}
    for name, service in services.items():
        kind = service["spec"].get("type", "ClusterIP")
        if kind == "LoadBalancer" and not service["spec"].get("loadBalancerSourceRanges"):
            found.append(f"Service {name}: a LoadBalancer open to every address")
        if kind in ("LoadBalancer", "NodePort") and not set(service["spec"].get("loadBalancerSourceRanges", [])) \
                <= admitted:
            found.append(f"Service {name}: source ranges no NetworkPolicy admits")
    return found


BROKER_URL_WITH_PASSWORD = re.compile(r"amqps?://[^\s:/@]*:[^\s@]+@")
SECRET_NAMES = re.compile(r"PASS|PASSWORD|TOKEN|COOKIE|SECRET", re.I)


def _strings(node: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, f"{path}[{index}]")
    elif isinstance(node, str):
        yield path, node


def literal_secrets(docs: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> list[str]:
    """No credential written into a manifest: no broker URL with a password anywhere, no literal value
    for a variable named like a secret, no generated Secret (the operator creates mlpower-credentials)."""
    found = []
    for doc in docs:
        where = f"{doc['kind']} {doc['metadata']['name']}"
        if doc["kind"] == "Secret":
            found.append(f"{where}: a Secret in the manifests (the operator creates it)")
        for path, text in _strings(doc, ""):
            if BROKER_URL_WITH_PASSWORD.search(text):
                found.append(f"{where}{path}: a literal broker password")
        for _, pod in _pods([doc]):
            for container in pod.get("containers", []) + pod.get("initContainers", []):
                for item in container.get("env", []):
                    # a *_FILE variable names where the secret is, which is the point
                    if SECRET_NAMES.search(item["name"]) and not item["name"].endswith("_FILE") and item.get("value"):
                        found.append(f"{where}/{container['name']}: {item['name']} has a literal value")
    return found


@pytest.mark.parametrize("folder", OVERLAYS, ids=[o.name for o in OVERLAYS])
def test_no_manifest_carries_a_literal_broker_password(deploy_tools: DeployTools, folder: Path) -> None:
    docs = build(deploy_tools.kubectl, folder)
    assert literal_secrets(docs) == []
    for path in folder.iterdir():  # the generated files themselves, patches as text included
        assert not BROKER_URL_WITH_PASSWORD.search(path.read_text(encoding="utf-8")), path
    rabbitmq = by_kind(docs, "StatefulSet")["rabbitmq"]["spec"]["template"]["spec"]
    rabbitmq_env = {e["name"]: e for e in rabbitmq["containers"][0]["env"]}
    assert "value" not in rabbitmq_env["RABBITMQ_DEFAULT_PASS"], "the administrator's password from the Secret"


@pytest.mark.parametrize("folder", OVERLAYS, ids=[o.name for o in OVERLAYS])
def test_every_overlay_keeps_the_policy(deploy_tools: DeployTools, folder: Path) -> None:
    docs = build(deploy_tools.kubectl, folder)
    assert policy_violations(docs) == []
    assert by_kind(docs, "NetworkPolicy"), "no NetworkPolicy"
    assert any(doc["kind"] == "StatefulSet" and doc["metadata"]["name"].startswith("director-") for doc in docs)


def _broken(docs: tuple[dict[str, Any], ...], kind: str, name: str, change: Any) -> list[dict[str, Any]]:
    copy = [yaml.safe_load(yaml.safe_dump(doc)) for doc in docs]
    change(next(doc for doc in copy if doc["kind"] == kind and doc["metadata"]["name"] == name))
    return copy


def _container0(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["template"]["spec"]["containers"][0]


def _drop_env(name: str) -> Any:
    def change(doc: dict[str, Any]) -> None:
        _container0(doc)["env"] = [e for e in _container0(doc)["env"] if e["name"] != name]
    return change


BREAKAGES: dict[str, tuple[str, str, Any, str]] = {
    "root": ("StatefulSet", "analytics",
             lambda d: d["spec"]["template"]["spec"]["securityContext"].update(runAsUser=0), "as root"),
    "latest": ("Deployment", "figures", lambda d: _container0(d).update(image="localhost:5000/mlpower:latest"),
               "immutable tag"),
    "no registry": ("Deployment", "figures", lambda d: _container0(d).update(image="mlpower:git-1"), "no registry"),
    "no limits": ("StatefulSet", "director-gpu-b", lambda d: _container0(d)["resources"].pop("limits"), "memory limit"),
    "no spool": ("StatefulSet", "director-gpu-b", _drop_env("MLPOWER_SPOOL_DIR"), "spool"),
    "no agent server": ("Deployment", "sut-agent-sim-a", _drop_env("MLPOWER_AGENT_SERVER"), "power-dev address"),
    "shared device": ("StatefulSet", "director-gpu-b", lambda d: _container0(d)["resources"]["limits"].update(
        {"mlpower.io/usb-0b21-0025-c2ph13047v": "1"}), "shared by SUTs"),
    "open load balancer": ("Service", "director-gpu-b-sut", lambda d: d["spec"].pop("loadBalancerSourceRanges"),
                           "open to every address"),
    "broker password in a variable": ("Deployment", "figures", lambda d: _container0(d)["env"].append(
        {"name": "AMQP_URL", "value": "amqp://u:p@rabbitmq:5672/%2F"}), "AMQP_URL_FILE"),
    "literal broker password": ("StatefulSet", "rabbitmq", lambda d: _container0(d)["env"].append(
        {"name": "RABBITMQ_DEFAULT_PASS", "value": "hunter2hunter2"}), "literal value"),
    "broker URL in an argument": ("Deployment", "figures", lambda d: _container0(d)["args"].append(
        "amqp://mlpower:hunter2@rabbitmq:5672/%2F"), "literal broker password"),
    "privileged": ("StatefulSet", "director-gpu-c",
                   lambda d: _container0(d)["securityContext"].update(privileged=True), "privileged"),
}


@pytest.mark.parametrize("breakage", BREAKAGES, ids=list(BREAKAGES))
def test_the_policy_check_sees_each_breakage(deploy_tools: DeployTools, breakage: str) -> None:
    kind, name, change, message = BREAKAGES[breakage]
    violations = policy_violations(_broken(build(deploy_tools.kubectl, OVERLAY), kind, name, change))
    assert any(message in violation for violation in violations), violations


# ---- the generator ---------------------------------------------------------------------------

IMAGE = {"registry": "registry.example/lab", "tag": "git-0123456789ab"}
USB_C = {"resource": "USB0::0x0B21::0x0025::C2PH13047V::INSTR",
         "device": {"node": "n3", "usb": {"vendor_id": "0b21", "product_id": "0025", "serial": "C2PH13047V"}}}
PLUGIN = "registry.example/lab/generic-device-plugin:0.1.0"


def inventory(*suts: dict[str, Any], **extra: Any) -> Any:
    return gen.Inventory.model_validate({"lab": "lab9", "namespace": "lab9", "image": IMAGE,
                                         "device_plugin_image": PLUGIN, "suts": list(suts), **extra})


def docs_of(inv: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in gen.manifests(inv)}


def container(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["template"]["spec"]["containers"][0]


def env(doc: dict[str, Any]) -> dict[str, str]:
    return _env_of(container(doc))


SHARED_AT_SCALE = (("StatefulSet", "analytics"), ("Service", "rabbitmq-nodes"), ("ServiceAccount", "rabbitmq"),
                   ("Role", "rabbitmq-peer-discovery"), ("RoleBinding", "rabbitmq-peer-discovery"))


def test_a_simulated_sut_gets_a_director_statefulset_with_a_spool_and_its_own_simulator() -> None:
    docs = docs_of(inventory({"name": "s1", "analyzer": "simulator", "agent": {}}))
    assert set(docs) - set(SHARED_AT_SCALE) == {
        ("Namespace", "lab9"), ("Service", "director-s1"), ("StatefulSet", "director-s1"),
        ("Service", "analyzer-sim-s1"), ("Deployment", "analyzer-sim-s1"), ("Service", "sut-agent-s1"),
        ("Deployment", "sut-agent-s1")}
    director = docs[("StatefulSet", "director-s1")]
    assert env(director)["MLPOWER_ANALYZER"] == "TCPIP0::analyzer-sim-s1::10001::SOCKET"
    assert env(director)["MLPOWER_SPOOL_DIR"] == "/spool"
    assert director["spec"]["replicas"] == 1 and director["spec"]["serviceName"] == "director-s1"
    assert director["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "spool"
    assert {"name": "spool", "mountPath": "/spool"} in container(director)["volumeMounts"]
    resources = container(director)["resources"]
    assert resources["requests"] == resources["limits"]  # Guaranteed QoS for the sampler
    assert env(docs[("Deployment", "sut-agent-s1")])["MLPOWER_AGENT_SERVER"] == "director-s1:4950"
    assert container(docs[("Deployment", "analyzer-sim-s1")])["image"] == "mlpower-slim"
    assert docs[("Namespace", "lab9")]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc in docs.values():
        validate(doc)


def test_usb_and_serial_analyzers_get_their_own_device_resources_and_groups() -> None:
    serial = {"resource": "/dev/serial/by-id/usb-FTDI_X-if00-port0",
              "device": {"node": "n3", "serial_path": "/dev/serial/by-id/usb-FTDI_X-if00-port0"}}
    inv = inventory({"name": "s1", "analyzers": [USB_C, serial]})
    director = docs_of(inv)[("StatefulSet", "director-s1")]
    pod = director["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/hostname": "n3"}
    assert pod["securityContext"]["supplementalGroups"] == [20, 46]  # dialout, plugdev
    limits = container(director)["resources"]["limits"]
    assert limits["mlpower.io/usb-0b21-0025-c2ph13047v"] == "1"
    assert limits["mlpower.io/serial-n3-usb-ftdi-x-if00-port0"] == "1"
    assert env(director)["MLPOWER_ANALYZER"] == f"{USB_C['resource']},{serial['resource']}"
    assert container(director)["securityContext"]["allowPrivilegeEscalation"] is False
    assert not any("hostPath" in volume for volume in pod["volumes"])
    plugin = gen.device_plugin(inv)
    entries = [json.loads(arg) for arg in container(plugin)["args"][1::2] if arg.startswith("{")]
    assert {"vendor": "0b21", "product": "0025", "serial": "C2PH13047V"} in entries[0]["groups"][0]["usb"]
    assert entries[1]["groups"][0]["paths"] == [{"path": serial["resource"]}]
    assert plugin["metadata"]["namespace"] == "kube-system"
    validate(director)
    validate(plugin)


def test_an_external_sut_gets_a_restricted_way_in() -> None:
    inv = inventory(
        {"name": "s1", "analyzer": "TCPIP0::192.0.2.7::INSTR", "external": {"addresses": ["192.0.2.50/32"]}},
        {"name": "s2", "analyzer": "TCPIP0::192.0.2.8::INSTR", "external": {"addresses": ["192.0.2.60/32"]}},
        sut_service_type="NodePort")
    docs = docs_of(inv)
    service = docs[("Service", "director-s1-sut")]
    assert service["spec"]["type"] == "NodePort" and service["spec"]["externalTrafficPolicy"] == "Local"
    policy = docs[("NetworkPolicy", "director-s1-sut")]
    assert policy["spec"]["ingress"] == [{"from": [{"ipBlock": {"cidr": "192.0.2.50/32"}}],
                                          "ports": [{"protocol": "TCP", "port": 4950}]}]
    broker = docs[("NetworkPolicy", "rabbitmq-from-suts")]
    assert [block["ipBlock"]["cidr"] for block in broker["spec"]["ingress"][0]["from"]] == \
        ["192.0.2.50/32", "192.0.2.60/32"]
    assert docs[("Service", "rabbitmq-suts")]["spec"]["ports"][0]["port"] == 5672
    balanced = docs_of(inventory({"name": "s1", "analyzer": "TCPIP0::192.0.2.7::INSTR",
                                  "external": {"addresses": ["192.0.2.50/32"]}}))
    assert balanced[("Service", "director-s1-sut")]["spec"]["loadBalancerSourceRanges"] == ["192.0.2.50/32"]
    for doc in docs.values():
        validate(doc)


def test_storage_defaults_to_read_write_once_and_pins_analytics_beside_pinned_analyzers() -> None:
    inv = inventory({"name": "s1", "analyzers": [USB_C]}, {"name": "s2", "analyzer": "simulator", "agent": {}})
    patches = [yaml.safe_load(patch["patch"]) for patch in gen.kustomization(inv)["patches"]]
    assert patches[0]["spec"]["accessModes"] == ["ReadWriteOnce"] and "storageClassName" not in patches[0]["spec"]
    assert patches[1]["metadata"]["name"] == "analytics"
    assert patches[1]["spec"]["template"]["spec"]["nodeSelector"] == {"kubernetes.io/hostname": "n3"}
    agent = docs_of(inv)[("Deployment", "sut-agent-s2")]["spec"]["template"]["spec"]
    assert agent["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]["labelSelector"] == \
        {"matchLabels": {"app.kubernetes.io/name": "analytics"}}
    shared = inventory({"name": "s1", "analyzers": [USB_C]}, storage={"access_mode": "ReadWriteMany", "class": "nfs"})
    patches = [yaml.safe_load(patch["patch"]) for patch in gen.kustomization(shared)["patches"]]
    assert not any(p["kind"] == "StatefulSet" and p["metadata"]["name"] == "analytics" for p in patches)  # unpinned
    assert patches[0]["spec"]["storageClassName"] == "nfs"
    spool = docs_of(shared)[("StatefulSet", "director-s1")]["spec"]["volumeClaimTemplates"][0]["spec"]
    assert spool["storageClassName"] == "nfs"


def test_prometheus_jobs_list_each_suts_components() -> None:
    inv = inventory({"name": "a", "analyzer": "simulator", "agent": {}},
                    {"name": "b", "analyzer": "TCPIP0::192.0.2.7::INSTR"})
    config = gen.prometheus_config(inv, {"scrape_configs": [{"job_name": "prometheus"}]})
    jobs = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"][1:]}
    assert all(job["static_configs"][0]["labels"]["lab"] == "lab9" for job in config["scrape_configs"][1:])
    assert jobs == {"mlpower-director": ["director-a:8000", "director-b:8000"],
                    "mlpower-analyzer-sim": ["analyzer-sim-a:8003"],
                    "mlpower-sut-agent": ["sut-agent-a:8004"]}
    with pytest.raises(gen.InventoryError):
        gen.prometheus_config(inv, {"scrape_configs": [{"job_name": "mlpower-director"}]})


def test_kustomization_names_the_lab_namespace_and_both_images() -> None:
    kustomization = gen.kustomization(inventory({"name": "a", "analyzer": "simulator"}))
    assert kustomization["namespace"] == "lab9"
    assert kustomization["images"] == [
        {"name": "mlpower", "newName": "registry.example/lab/mlpower", "newTag": "git-0123456789ab"},
        {"name": "mlpower-slim", "newName": "registry.example/lab/mlpower-slim", "newTag": "git-0123456789ab"}]
    assert {"name": "mlpower-config", "behavior": "merge",
            "literals": ["MLPOWER_LAB=lab9", "MLPOWER_QUEUE_TYPE=quorum"]} in \
        kustomization["configMapGenerator"]


HEAD = "lab: l\nnamespace: l\nimage: {registry: r.example, tag: t1}\ndevice_plugin_image: r.example/p:1\n"
USB = ("{resource: 'USB0::0x0B21::0x0025::SN1::INSTR', "
       "device: {node: n1, usb: {vendor_id: 0b21, product_id: '0025', serial: SN1}}}")


@pytest.mark.parametrize("text, where", [
    (HEAD + "suts: [{name: a, analyzer: simulator}, {name: a, analyzer: simulator}]", "suts"),
    (HEAD + "suts: [{name: Upper, analyzer: simulator}]", "suts.0.name"),
    (HEAD + "suts: [{name: a, analyzer: simulator, colour: red}]", "suts.0.colour"),
    (HEAD + "suts: []", "suts"),
    ("lab: l\nimage: {registry: r.example, tag: t1}\nsuts: [{name: a, analyzer: simulator}]", "namespace"),
    ("lab: l\nnamespace: l\nimage: {registry: r.example, tag: latest}\nsuts: [{name: a, analyzer: simulator}]",
     "image.tag"),
    ("lab: l\nnamespace: l\nsuts: [{name: a, analyzer: simulator}]", "image"),
    # the old form: a device node that libusb never opens, and no serial to pick the meter by
    (HEAD + "suts: [{name: a, analyzer: 'USB0::0x0B21::0x0025::SN1::INSTR', usb: {node: n, device: /dev/usbtmc0}}]",
     "suts.0.analyzers.0"),
    (HEAD + "suts: [{name: a, analyzer: 'USB0::0x0B21::0x0025::SN1::INSTR'}]", "suts.0.analyzers.0"),
    (HEAD + "suts: [{name: a, analyzers: [{resource: 'USB0::0x0B21::0x0025::SN2::INSTR', device: "
     "{node: n1, usb: {vendor_id: 0b21, product_id: '0025', serial: SN1}}}]}]", "suts.0.analyzers.0"),
    (HEAD + f"suts: [{{name: a, analyzers: [{USB}]}}, {{name: b, analyzers: [{USB}]}}]", "(top)"),
    (HEAD + "suts: [{name: a, analyzer: 'TCPIP0::192.0.2.1::INSTR'}, {name: b, analyzer: 'TCPIP0::192.0.2.1::INSTR'}]",
     "(top)"),
    (HEAD + "suts: [{name: a, analyzers: [{resource: /dev/ttyUSB0, device: {node: n1, serial_path: /dev/ttyUSB0}}]},"
     " {name: b, analyzers: [{resource: /dev/ttyUSB1, device: {node: n1, serial_path: /dev/ttyUSB1}}]}]", "(top)"),
    (HEAD + f"suts: [{{name: a, analyzers: [{USB}, {{resource: 'USB0::0x0B21::0x0025::SN3::INSTR', device: "
     "{node: n2, usb: {vendor_id: 0b21, product_id: '0025', serial: SN3}}}]}]", "suts.0"),
    ("lab: l\nnamespace: l\nimage: {registry: r.example, tag: t1}\n" + f"suts: [{{name: a, analyzers: [{USB}]}}]",
     "(top)"),
    (HEAD + "suts: [{name: a, analyzer: simulator, external: {addresses: [0.0.0.0/0]}}]", "suts.0.external.addresses"),
    (HEAD + "suts: [{name: a, analyzer: simulator, agent: {}, external: {addresses: [192.0.2.1/32]}}]", "suts.0"),
])
def test_a_bad_or_ambiguous_inventory_is_refused_with_where(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    with pytest.raises(gen.InventoryError, match=rf": {re.escape(where)}: "):
        gen.load_inventory(path)
    assert gen.main([str(path)]) == 2


def test_read_write_once_results_refuse_analyzers_on_two_nodes() -> None:
    other = {"resource": "USB0::0x0B21::0x0025::SN9::INSTR",
             "device": {"node": "n4", "usb": {"vendor_id": "0b21", "product_id": "0025", "serial": "SN9"}}}
    with pytest.raises(ValueError, match="ReadWriteMany"):
        inventory({"name": "a", "analyzers": [USB_C]}, {"name": "b", "analyzers": [other]})
    inventory({"name": "a", "analyzers": [USB_C]}, {"name": "b", "analyzers": [other]},
              storage={"access_mode": "ReadWriteMany", "class": "nfs"})


def test_cli_writes_the_overlay_next_to_the_inventory(tmp_path: Path, deploy_tools: DeployTools) -> None:
    overlay = tmp_path / "overlays" / "lab"
    overlay.mkdir(parents=True)
    (overlay / "inventory.yaml").write_text(
        HEAD + "suts: [{name: only, analyzer: 'TCPIP0::192.0.2.9::10001::SOCKET'}]\n")
    shutil.copytree(K8S / "base", tmp_path / "base")
    assert gen.main([str(overlay / "inventory.yaml")]) == 0
    assert sorted(path.name for path in overlay.iterdir()) == \
        ["30-cluster.conf", "40-definitions.conf", "enabled_plugins", "inventory.yaml", "kustomization.yaml",
         "prometheus.yml", "suts.yaml"]
    docs = build(deploy_tools.kubectl, overlay)
    assert set(by_kind(docs, "Deployment")) == {"figures", "prometheus", "grafana"}
    assert set(by_kind(docs, "StatefulSet")) == {"director-only", "rabbitmq", "analytics"}
    assert policy_violations(docs) == []


def test_the_broker_is_a_cluster_and_analytics_scales_out_as_the_inventory_says(deploy_tools: DeployTools) -> None:
    docs = build(deploy_tools.kubectl, OVERLAY)
    sets, scale = by_kind(docs, "StatefulSet"), gen.load_inventory(OVERLAY / "inventory.yaml").scale
    broker, analytics = sets["rabbitmq"], sets["analytics"]
    assert broker["spec"]["replicas"] == scale.broker_replicas == 3
    assert analytics["spec"]["replicas"] == scale.analytics_replicas > 1
    assert "analytics" not in by_kind(docs, "Deployment")  # the base's single one is replaced
    broker_env = {e["name"]: e for e in _container0(broker)["env"]}
    assert broker_env["K8S_SERVICE_NAME"]["value"] == "rabbitmq-nodes"
    assert broker_env["RABBITMQ_ERLANG_COOKIE"]["valueFrom"]["secretKeyRef"]["name"] == "mlpower-credentials"
    assert broker["spec"]["template"]["spec"]["serviceAccountName"] == "rabbitmq"
    conf = by_kind(docs, "ConfigMap")
    broker_conf = next(c for n, c in conf.items() if n.startswith("rabbitmq-config"))["data"]
    assert "rabbit_peer_discovery_k8s" in broker_conf["30-cluster.conf"]
    assert "rabbitmq_peer_discovery_k8s" in broker_conf["enabled_plugins"]
    role = by_kind(docs, "Role")["rabbitmq-peer-discovery"]
    assert role["rules"] == [{"apiGroups": [""], "resources": ["endpoints"], "verbs": ["get"]}]
    lab_conf = next(c for n, c in conf.items() if n.startswith("mlpower-config"))["data"]
    assert lab_conf["MLPOWER_QUEUE_TYPE"] == "quorum"
    analytics_env = {e["name"]: e for e in _container0(analytics)["env"]}
    assert analytics_env["MLPOWER_ANALYTICS_REPLICAS"]["value"] == str(scale.analytics_replicas)
    assert "pod-index" in analytics_env["MLPOWER_ANALYTICS_REPLICA"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert "$(POD_NAME)" in analytics_env["MLPOWER_ANALYTICS_STORE"]["value"]  # a run table per replica


def test_an_even_broker_cluster_is_refused() -> None:
    with pytest.raises(ValidationError, match="even number"):
        inventory({"name": "s1", "analyzer": "simulator"}, scale={"broker_replicas": 2})


def test_every_broker_account_of_the_lab_has_its_own_secret_key(deploy_tools: DeployTools) -> None:
    """One URL per account of mlpower.broker_permissions (one director and agent per SUT, ...), each
    mounted by exactly the pods of that account, so each can log in with only its own rights."""
    from mlpower.broker_permissions import accounts

    docs = build(deploy_tools.kubectl, OVERLAY)
    inv = gen.load_inventory(OVERLAY / "inventory.yaml")
    mounted: dict[str, set[str]] = {}
    for name, pod in _pods(docs):
        for volume in pod.get("volumes", []):
            for item in volume.get("secret", {}).get("items", []):
                if item["key"].startswith("amqp-url-") and name != "rabbitmq":  # the broker's: below
                    mounted.setdefault(item["key"].removeprefix("amqp-url-"), set()).add(name)
    suts = [sut.name for sut in inv.suts]
    expected = set(accounts(inv.lab, suts))
    # only the SUTs with an in-cluster agent mount an agent's URL; outside SUTs use theirs on the SUT
    used = {name for name in expected if not name.startswith("sut-agent-")
            or any(sut.agent and name == f"sut-agent-{sut.name}" for sut in inv.suts)}
    assert set(mounted) == used, set(mounted) ^ used
    for account, pods in mounted.items():
        if account.startswith(("director-", "sut-agent-")):
            assert pods == {account}, (account, pods)
    # the broker's init container reads every account's URL, outside SUTs' too, to make their users
    broker = by_kind(docs, "StatefulSet")["rabbitmq"]["spec"]["template"]["spec"]
    keys = {item["key"] for volume in broker["volumes"] for item in volume.get("secret", {}).get("items", [])}
    assert keys == {"rabbitmq-user", "rabbitmq-password", *(f"amqp-url-{name}" for name in expected)}
    init = broker["initContainers"][0]
    assert init["command"][:3] == ["python", "-m", "mlpower.broker_definitions"]
    assert init["image"].rsplit("/", 1)[-1].startswith("mlpower-slim:")


def test_the_broker_init_container_makes_definitions_from_the_secret(deploy_tools: DeployTools,
                                                                     tmp_path: Path) -> None:
    """What the init container runs, on a folder laid out as its Secret volume: the definitions the
    broker's 40-definitions.conf loads, with every account of the lab."""
    from mlpower.broker_definitions import hash_matches, main
    from mlpower.broker_permissions import accounts

    docs = build(deploy_tools.kubectl, OVERLAY)
    inv = gen.load_inventory(OVERLAY / "inventory.yaml")
    broker = by_kind(docs, "StatefulSet")["rabbitmq"]["spec"]["template"]["spec"]
    folder = tmp_path / "secret"
    folder.mkdir()
    keys = [item["key"] for volume in broker["volumes"] for item in volume.get("secret", {}).get("items", [])]
    for key in keys:
        value = "admin" if key == "rabbitmq-user" else "pw-" + key
        if key.startswith("amqp-url-"):
            value = f"amqp://mlpower-{inv.lab}-{key.removeprefix('amqp-url-')}:pw-{key}@rabbitmq:5672/%2F"
        (folder / key).write_text(value)
    command = broker["initContainers"][0]["command"]
    out = command.index("--out")
    args = command[3:]
    args[args.index(gen.SECRETS_DIR)] = str(folder)
    args[out - 2] = str(tmp_path / "definitions.json")
    assert main(args) == 0
    document = json.loads((tmp_path / "definitions.json").read_text())
    users = {user["name"]: user for user in document["users"]}
    assert set(users) == {"admin", *(f"mlpower-{inv.lab}-{a}" for a in accounts(inv.lab, [s.name for s in inv.suts]))}
    assert hash_matches("pw-amqp-url-figures", users[f"mlpower-{inv.lab}-figures"]["password_hash"])
    conf = (OVERLAY / gen.BROKER_DEFINITIONS_CONF).read_text()
    mounted = {m["mountPath"] for m in broker["containers"][0]["volumeMounts"]}
    assert f"load_definitions = {command[out + 1]}" in conf and gen.BROKER_DEFINITIONS_DIR in mounted
