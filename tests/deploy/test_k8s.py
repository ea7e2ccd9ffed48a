"""deploy/k8s: `kubectl kustomize` of base and overlay against the Kubernetes schemas, and the
inventory generator (inventory -> manifests, Prometheus targets, kustomization)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

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


@pytest.mark.parametrize("folder", [K8S / "base", OVERLAY, K8S / "examples" / "usb-analyzer"],
                         ids=["base", "multi-sut", "usb-example"])
def test_kustomize_output_passes_the_kubernetes_schemas(deploy_tools: DeployTools, folder: Path) -> None:
    docs = build(deploy_tools.kubectl, folder)
    assert len(docs) > 5
    for doc in docs:
        validate(doc)


def test_the_schema_check_rejects_a_broken_manifest(deploy_tools: DeployTools) -> None:
    import kubernetes_validate

    deployment = dict(by_kind(build(deploy_tools.kubectl, OVERLAY), "Deployment")["director-sim-a"])
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


# ---- the generator ---------------------------------------------------------------------------

def inventory(**sut: Any) -> Any:
    return gen.Inventory.model_validate({"lab": "lab9", "namespace": "lab9", "suts": [{"name": "s1", **sut}]})


def docs_of(inv: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in gen.manifests(inv)}


def container(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["template"]["spec"]["containers"][0]


def env(doc: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item.get("value", "") for item in container(doc)["env"]}


def test_a_simulated_sut_gets_a_director_wired_to_its_own_simulator() -> None:
    docs = docs_of(inventory(analyzer="simulator"))
    assert set(docs) == {("Namespace", "lab9"), ("Service", "director-s1"), ("Deployment", "director-s1"),
                         ("Service", "analyzer-sim-s1"), ("Deployment", "analyzer-sim-s1")}
    director = docs[("Deployment", "director-s1")]
    assert env(director)["MLPOWER_ANALYZER"] == "TCPIP0::analyzer-sim-s1::10001::SOCKET"
    assert env(director)["MLPOWER_SUT"] == "s1"
    assert director["spec"]["strategy"] == {"type": "Recreate"}
    assert env(docs[("Deployment", "analyzer-sim-s1")])["MLPOWER_SIM_SUT"] == "s1"
    assert container(director)["args"] == ["director"]


def test_a_network_analyzer_gets_no_simulator_and_an_agent_when_declared() -> None:
    docs = docs_of(inventory(analyzer="TCPIP0::192.0.2.7::INSTR", analyzer_name="wt1",
                             agent={"node": "gpu1", "duration_s": 30}))
    assert ("Deployment", "analyzer-sim-s1") not in docs
    assert env(docs[("Deployment", "director-s1")])["MLPOWER_ANALYZER"] == "TCPIP0::192.0.2.7::INSTR"
    agent = docs[("Deployment", "sut-agent-s1")]
    assert container(agent)["args"] == ["agent", "--bus"]
    assert env(agent)["MLPOWER_AGENT_DURATION_S"] == "30"
    assert agent["spec"]["template"]["spec"]["nodeSelector"] == {"kubernetes.io/hostname": "gpu1"}


def test_usb_through_a_device_plugin_stays_unprivileged() -> None:
    docs = docs_of(inventory(analyzer="USB0::1::2::3::INSTR",
                             usb={"node": "n3", "device": "/dev/usbtmc1", "resource": "example.com/usbtmc"}))
    pod = docs[("Deployment", "director-s1")]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/hostname": "n3"}
    assert pod["securityContext"]["supplementalGroups"] == [46]
    assert pod["containers"][0]["resources"]["limits"]["example.com/usbtmc"] == "1"
    assert pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False
    assert not any("hostPath" in volume for volume in pod["volumes"])
    validate(docs[("Deployment", "director-s1")])


def test_usb_without_a_device_plugin_mounts_the_device_node_privileged() -> None:
    docs = docs_of(inventory(analyzer="/dev/ttyUSB0",
                             usb={"node": "n3", "device": "/dev/ttyUSB0", "access": "privileged", "group_id": 20}))
    pod = docs[("Deployment", "director-s1")]["spec"]["template"]["spec"]
    assert {"name": "analyzer-device", "hostPath": {"path": "/dev/ttyUSB0", "type": "CharDevice"}} in pod["volumes"]
    assert {"name": "analyzer-device", "mountPath": "/dev/ttyUSB0"} in pod["containers"][0]["volumeMounts"]
    assert pod["containers"][0]["securityContext"]["privileged"] is True
    assert pod["securityContext"]["runAsUser"] == 10001 and pod["securityContext"]["supplementalGroups"] == [20]
    validate(docs[("Deployment", "director-s1")])


def test_prometheus_jobs_list_each_suts_components() -> None:
    inv = gen.Inventory.model_validate({"lab": "l", "namespace": "l", "suts": [
        {"name": "a", "analyzer": "simulator", "agent": {}},
        {"name": "b", "analyzer": "TCPIP0::192.0.2.7::INSTR"}]})
    config = gen.prometheus_config(inv, {"scrape_configs": [{"job_name": "prometheus"}]})
    jobs = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"][1:]}
    assert jobs == {"mlpower-director": ["director-a:8000", "director-b:8000"],
                    "mlpower-analyzer-sim": ["analyzer-sim-a:8003"],
                    "mlpower-sut-agent": ["sut-agent-a:8004"]}
    with pytest.raises(gen.InventoryError):
        gen.prometheus_config(inv, {"scrape_configs": [{"job_name": "mlpower-director"}]})


def test_kustomization_names_the_lab_namespace_and_image() -> None:
    inv = gen.Inventory.model_validate({"lab": "lab-7", "namespace": "ns7",
                                        "image": {"name": "reg/mlpower", "tag": "1.2"},
                                        "suts": [{"name": "a", "analyzer": "simulator"}]})
    kustomization = gen.kustomization(inv)
    assert kustomization["namespace"] == "ns7"
    assert kustomization["images"] == [{"name": "mlpower", "newName": "reg/mlpower", "newTag": "1.2"}]
    assert {"name": "mlpower-config", "behavior": "merge", "literals": ["MLPOWER_LAB=lab-7"]} in \
        kustomization["configMapGenerator"]


@pytest.mark.parametrize("text, where", [
    ("lab: l\nnamespace: l\nsuts: [{name: a, analyzer: simulator}, {name: a, analyzer: simulator}]", "suts"),
    ("lab: l\nnamespace: l\nsuts: [{name: Upper, analyzer: simulator}]", "suts.0.name"),
    ("lab: l\nnamespace: l\nsuts: [{name: a, analyzer: simulator, usb: {node: n, device: /dev/usbtmc0}}]", "suts.0"),
    ("lab: l\nnamespace: l\nsuts: [{name: a, analyzer: simulator, colour: red}]", "suts.0.colour"),
    ("lab: l\nnamespace: l\nsuts: []", "suts"),
    ("lab: l\nsuts: [{name: a, analyzer: simulator}]", "namespace"),
])
def test_a_bad_inventory_is_refused_with_where(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    with pytest.raises(gen.InventoryError, match=rf": {where}: "):
        gen.load_inventory(path)
    assert gen.main([str(path)]) == 2


def test_cli_writes_the_overlay_next_to_the_inventory(tmp_path: Path, deploy_tools: DeployTools) -> None:
    overlay = tmp_path / "overlays" / "lab"
    overlay.mkdir(parents=True)
    (overlay / "inventory.yaml").write_text(
        "lab: l\nnamespace: l\nsuts: [{name: only, analyzer: 'TCPIP0::192.0.2.9::10001::SOCKET'}]\n")
    shutil.copytree(K8S / "base", tmp_path / "base")
    assert gen.main([str(overlay / "inventory.yaml")]) == 0
    assert sorted(path.name for path in overlay.iterdir()) == \
        ["inventory.yaml", "kustomization.yaml", "prometheus.yml", "suts.yaml"]
    docs = build(deploy_tools.kubectl, overlay)
    assert set(by_kind(docs, "Deployment")) == {"director-only", "analytics", "figures", "prometheus", "grafana"}


def test_usb_example_patch_hands_the_device_to_one_director(deploy_tools: DeployTools) -> None:
    docs = build(deploy_tools.kubectl, K8S / "examples" / "usb-analyzer")
    pod = by_kind(docs, "Deployment")["director-gpu-b"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/hostname": "lab-node-2"}
    director = pod["containers"][0]
    assert [item["value"] for item in director["env"] if item["name"] == "MLPOWER_ANALYZER"] == \
        ["USB0::0x0B21::0x0025::C2PH13047V::INSTR"]
    assert director["resources"]["limits"]["squat.ai/usbtmc"] == "1"
    assert director["securityContext"]["allowPrivilegeEscalation"] is False
    assert "generic-device-plugin" in by_kind(docs, "DaemonSet")
