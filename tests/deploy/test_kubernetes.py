"""deploy/k8s: every kustomization renders, validates against the Kubernetes schemas (CRDs
against their own), and says what the runbook promises."""

from __future__ import annotations

import configparser
import os
import re
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from aidetector.config.loading import load_params
from aidetector.config.serve import ServeSettings

from .conftest import REPO, Render, ValidateCrds
from .kuberay import kuberay_problems
from .pods import containers

K8S = REPO / "deploy" / "k8s"
KUBERNETES_VERSION = "1.32.0"
CRD_GROUPS = ("monitoring.coreos.com/", "ray.io/")
KUSTOMIZATIONS = ["base", "overlays/production", "overlays/cpu", "training", "scoring"]
API = "ai-image-detector-api"

Objects = list[dict[str, Any]]


def find(objects: Objects, kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def container(objects: Objects, kind: str, name: str) -> dict[str, Any]:
    return find(objects, kind, name)["spec"]["template"]["spec"]["containers"][0]


@pytest.fixture(scope="module")
def rendered(render: Render) -> dict[str, Objects]:
    return {name: render(K8S / name) for name in KUSTOMIZATIONS}


@pytest.fixture(scope="module")
def production(rendered: dict[str, Objects]) -> Objects:
    return rendered["overlays/production"]


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_manifests_validate_against_kubernetes_schemas(
    rendered: dict[str, Objects], validate_crds: ValidateCrds, name: str
) -> None:
    objects = rendered[name]
    assert objects, f"{name} rendered nothing"
    builtin = [o for o in objects if not o["apiVersion"].startswith(CRD_GROUPS)]
    for obj in builtin:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{name}: {obj['kind']}/{obj['metadata']['name']}: {error.message}")
    kuberay = [o for o in objects if o["apiVersion"].startswith("ray.io/")]
    assert validate_crds([o for o in objects if o not in builtin and o not in kuberay]) == []
    for obj in kuberay:  # no schema package for KubeRay's CRDs: see kuberay.py
        assert kuberay_problems(obj, KUBERNETES_VERSION) == [], obj["metadata"]["name"]


def test_schema_validation_catches_a_broken_manifest(
    production: Objects, validate_crds: ValidateCrds
) -> None:
    deployment = yaml.safe_load(yaml.safe_dump(find(production, "Deployment", API)))
    deployment["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    monitor = yaml.safe_load(yaml.safe_dump(find(production, "ServiceMonitor", API)))
    monitor["spec"]["endpoints"][0]["interval"] = "every minute"
    problems = validate_crds([monitor])
    assert len(problems) == 1 and "interval" in problems[0]["message"]


def test_gpu_deployment_is_production_shaped(production: Objects) -> None:
    deployment = find(production, "Deployment", API)
    assert deployment["metadata"]["namespace"] == "ai-image-detector"
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["terminationGracePeriodSeconds"] >= 30
    api = pod["containers"][0]
    assert api["image"].startswith("ghcr.io/") and ":" in api["image"]
    resources = api["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == 1
    assert {"cpu", "memory"} <= resources["requests"].keys()
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert api["startupProbe"]["httpGet"]["path"] == "/readyz"
    startup = api["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120, "model load needs time"
    assert api["securityContext"]["readOnlyRootFilesystem"] is True
    assert api["securityContext"]["allowPrivilegeEscalation"] is False
    assert api["lifecycle"]["preStop"]


def test_secrets_and_config_come_from_kubernetes_objects(production: Objects) -> None:
    api = container(production, "Deployment", API)
    env = {e["name"]: e for e in api["env"]}
    for variable in ("API_KEY", "SENTRY_DSN", "REDIS_URL"):
        assert env[variable]["valueFrom"]["secretKeyRef"]["name"] == "ai-image-detector-secrets"
    assert not any("value" in env[v] for v in ("API_KEY", "SENTRY_DSN", "REDIS_URL"))
    # The ConfigMap (with its content hash in the name) is mounted where the env var points.
    volumes = find(production, "Deployment", API)["spec"]["template"]["spec"]["volumes"]
    config_map = next(v["configMap"]["name"] for v in volumes if v["name"] == "config")
    overrides = find(production, "ConfigMap", config_map)["data"]["serve-overrides.yaml"]
    mount = next(m["mountPath"] for m in api["volumeMounts"] if m["name"] == "config")
    assert env["AIDETECTOR_SERVE_OVERRIDES"]["value"] == f"{mount}/serve-overrides.yaml"
    assert_valid_overrides(overrides)


@pytest.mark.parametrize("overlay", ["overlays/production", "overlays/cpu"])
def test_access_fails_closed_in_the_cluster(rendered: dict[str, Objects], overlay: str) -> None:
    objects = rendered[overlay]
    api = container(objects, "Deployment", API)
    env = {e["name"]: e for e in api["env"]}
    example = read_env_file(K8S / "base" / "secret.example.env")
    for variable, key in (("API_KEY", "api-key"), ("FEEDBACK_API_KEYS", "feedback-api-keys")):
        ref = env[variable]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "ai-image-detector-secrets" and ref["key"] == key
        # Required: a Secret without the key keeps the pod from starting at all.
        assert ref.get("optional", False) is False, f"{variable} must not be optional"
        assert key in example, f"secret.example.env lacks {key}"
    # Nothing in the cluster opts out of the key.
    volumes = find(objects, "Deployment", API)["spec"]["template"]["spec"]["volumes"]
    config_map = next(v["configMap"]["name"] for v in volumes if v["name"] == "config")
    overrides = yaml.safe_load(
        find(objects, "ConfigMap", config_map)["data"]["serve-overrides.yaml"]
    )
    assert overrides.get("allow_anonymous", False) is False
    assert ServeSettings.model_fields["allow_anonymous"].is_required()
    # The service's one-line refusal becomes the termination message `kubectl describe` shows.
    assert api["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_the_example_keys_are_placeholders_the_service_refuses() -> None:
    from aidetector.config.serve import parse_api_keys, parse_feedback_keys
    from aidetector.errors import AidetectorError

    example = read_env_file(K8S / "base" / "secret.example.env")
    with pytest.raises(AidetectorError, match="characters"):
        parse_api_keys(example["api-key"])
    with pytest.raises(AidetectorError, match="characters"):
        parse_feedback_keys(example["feedback-api-keys"])


def assert_valid_overrides(text: str) -> None:
    known = set(ServeSettings.model_fields)
    overrides = yaml.safe_load(text)
    assert overrides and set(overrides) <= known, set(overrides) - known


def test_service_hpa_pdb_and_monitor_point_at_the_api(production: Objects) -> None:
    pod_labels = find(production, "Deployment", API)["spec"]["template"]["metadata"]["labels"]
    service = find(production, "Service", API)
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    hpa = find(production, "HorizontalPodAutoscaler", API)
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": API}
    assert hpa["spec"]["scaleTargetRef"] == target
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 10)
    cpu = hpa["spec"]["metrics"][0]["resource"]
    assert cpu["name"] == "cpu" and cpu["target"]["averageUtilization"] == 70
    pdb = find(production, "PodDisruptionBudget", API)
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]
    monitor = find(production, "ServiceMonitor", API)
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0] == monitor["spec"]["endpoints"][0] | {
        "port": "http",
        "path": "/metrics",
    }


def read_env_file(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_redis_cache_matches_the_secret_example(production: Objects) -> None:
    redis = find(production, "Service", "ai-image-detector-redis")
    example = read_env_file(K8S / "base" / "secret.example.env")
    url = urlsplit(example["redis-url"])
    assert (url.scheme, url.hostname) == ("redis", redis["metadata"]["name"])
    assert (url.port, url.path) == (redis["spec"]["ports"][0]["port"], "/0")
    # The API authenticates with the password Redis is started with.
    assert url.password == example["redis-password"]
    args = container(production, "Deployment", "ai-image-detector-redis")["args"]
    assert "allkeys-lru" in args  # a cache: evicts instead of failing writes


def test_redis_requires_the_password_from_the_secret(production: Objects) -> None:
    redis = container(production, "Deployment", "ai-image-detector-redis")
    args = redis["args"]
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    env = {e["name"]: e for e in redis["env"]}
    secret = {"name": "ai-image-detector-secrets", "key": "redis-password"}
    # The server's password and the probe's redis-cli login are the same Secret key.
    for variable in ("REDIS_PASSWORD", "REDISCLI_AUTH"):
        assert env[variable]["valueFrom"]["secretKeyRef"] == secret
    # redis-cli exits 0 on NOAUTH: the probe must look for PONG, or it passes unauthenticated.
    probe = " ".join(redis["readinessProbe"]["exec"]["command"])
    assert "redis-cli ping" in probe and "PONG" in probe


CREDENTIAL = re.compile(r"(?i)password|secret|token|api_key|_auth$|dsn|access_key")


def credentials_written_inline(objects: Objects) -> list[str]:
    """Secret objects and credential-named env vars that do not come from a secretKeyRef."""
    found = [f"Secret/{o['metadata']['name']}" for o in objects if o["kind"] == "Secret"]
    for obj in objects:
        for box in containers(obj):
            found += [
                f"{obj['metadata']['name']}/{box['name']}: {env['name']}"
                for env in box.get("env", [])
                if CREDENTIAL.search(env["name"]) and "secretKeyRef" not in env.get("valueFrom", {})
            ]
    return found


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_no_credential_is_written_into_a_manifest(rendered: dict[str, Objects], name: str) -> None:
    # Secrets are created by the operator (secret.example.env, secrets.example.env).
    assert credentials_written_inline(rendered[name]) == []


def test_credential_check_catches_an_inline_password(production: Objects) -> None:
    redis = yaml.safe_load(
        yaml.safe_dump(find(production, "Deployment", "ai-image-detector-redis"))
    )
    redis["spec"]["template"]["spec"]["containers"][0]["env"][0] = {
        "name": "REDIS_PASSWORD",
        "value": "hunter2",
    }
    assert credentials_written_inline([redis]) == ["ai-image-detector-redis/redis: REDIS_PASSWORD"]


def test_monitoring_configmaps_ship_with_the_overlay(production: Objects) -> None:
    dashboard = find(production, "ConfigMap", "ai-image-detector-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert "ai-image-detector.json" in dashboard["data"]
    assert "alerts.yml" in find(production, "ConfigMap", "ai-image-detector-alerts")["data"]


def test_cpu_overlay_needs_no_gpu(rendered: dict[str, Objects]) -> None:
    cpu = rendered["overlays/cpu"]
    deployment = find(cpu, "Deployment", API)
    text = yaml.safe_dump(deployment)
    assert "nvidia.com/gpu" not in text
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    config_map = next(v["configMap"]["name"] for v in volumes if v["name"] == "config")
    overrides = find(cpu, "ConfigMap", config_map)["data"]["serve-overrides.yaml"]
    assert_valid_overrides(overrides)
    assert yaml.safe_load(overrides)["gpus"] == 0
    assert find(cpu, "HorizontalPodAutoscaler", API)["spec"]["minReplicas"] == 3


def test_in_flight_hpa_component_renders_and_validates(render: Render, tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    base = os.path.relpath(K8S / "base", overlay)
    component = os.path.relpath(K8S / "components" / "hpa-inflight", overlay)
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump({"resources": [base], "components": [component]})
    )
    hpa = find(render(overlay), "HorizontalPodAutoscaler", API)
    kubernetes_validate.validate(hpa, KUBERNETES_VERSION, strict=True)
    metric = hpa["spec"]["metrics"][0]
    assert metric["type"] == "Pods"
    assert metric["pods"]["metric"]["name"] == "inference_requests_in_flight"


def test_training_job_runs_lightning_ddp_with_torchrun(rendered: dict[str, Objects]) -> None:
    training = rendered["training"]
    job = find(training, "Job", "ai-image-detector-ddp")
    settings = find(
        training,
        "ConfigMap",
        next(
            o["metadata"]["name"]
            for o in training
            if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("ddp-train")
        ),
    )["data"]
    nodes = int(settings["NNODES"])
    assert nodes >= 2
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == nodes
    pod = job["spec"]["template"]["spec"]
    headless = find(training, "Service", pod["subdomain"])
    assert headless["spec"]["clusterIP"] == "None"
    script = pod["containers"][0]["args"][0]
    assert "torchrun" in script and '--node-rank="${JOB_COMPLETION_INDEX}"' in script
    assert "trainer=ddp" in script and "trainer.num_nodes=${NNODES}" in script
    assert f"--master-addr={job['metadata']['name']}-0.{pod['subdomain']}" in script
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] >= 1
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["MLFLOW_TRACKING_URI"]["value"] == "http://mlflow:5000"
    assert (REPO / "conf" / "trainer" / "ddp.yaml").is_file()


def test_mlflow_server_uses_postgres_and_s3(rendered: dict[str, Objects]) -> None:
    training = rendered["training"]
    mlflow = container(training, "Deployment", "mlflow")
    assert mlflow["args"][0] == "server" and "--serve-artifacts" in mlflow["args"]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in mlflow["env"] if "valueFrom" in e}
    assert env["MLFLOW_BACKEND_STORE_URI"]["name"] == "mlflow-db"
    assert env["MLFLOW_ARTIFACTS_DESTINATION"]["name"] == "mlflow-s3"
    postgres = find(training, "StatefulSet", "mlflow-postgres")
    assert container(training, "StatefulSet", "mlflow-postgres")["image"].startswith("postgres:")
    assert postgres["spec"]["volumeClaimTemplates"]


def test_mlflow_server_requires_basic_auth(rendered: dict[str, Objects]) -> None:
    training = rendered["training"]
    deployment = find(training, "Deployment", "mlflow")
    mlflow = deployment["spec"]["template"]["spec"]["containers"][0]
    # The app name must be one the pinned MLflow registers (`mlflow server --app-name`).
    apps = {entry.name for entry in entry_points(group="mlflow.app")}
    assert "--app-name=basic-auth" in mlflow["args"] and "basic-auth" in apps
    env = {e["name"]: e for e in mlflow["env"]}
    for variable, key in [
        ("MLFLOW_AUTH_ADMIN_USERNAME", "admin-username"),
        ("MLFLOW_AUTH_ADMIN_PASSWORD", "admin-password"),
        ("MLFLOW_FLASK_SERVER_SECRET_KEY", "flask-secret-key"),
    ]:
        assert env[variable]["valueFrom"]["secretKeyRef"] == {"name": "mlflow-auth", "key": key}
    # The auth config is the Secret's basic_auth.ini, mounted where the env var points.
    config = Path(env["MLFLOW_AUTH_CONFIG_PATH"]["value"])
    mount = next(m for m in mlflow["volumeMounts"] if m["mountPath"] == str(config.parent))
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    secret = next(v["secret"] for v in volumes if v["name"] == mount["name"])
    assert secret["secretName"] == "mlflow-auth"
    assert secret["items"] == [{"key": config.name, "path": config.name}]
    # /health stays open under basic auth, so the probes need no credentials.
    assert mlflow["readinessProbe"]["httpGet"]["path"] == "/health"
    # The image installs the auth extra (Flask-WTF) of the MLflow release the project pins.
    pinned = next(
        line
        for line in (REPO / "requirements.txt").read_text().splitlines()
        if line.startswith("mlflow==")
    )
    dockerfile = (REPO / "deploy" / "docker" / "mlflow.Dockerfile").read_text()
    assert pinned.replace("mlflow==", "mlflow[auth]==") in dockerfile


def test_mlflow_auth_example_keeps_users_in_postgres(rendered: dict[str, Objects]) -> None:
    parser = configparser.ConfigParser()
    parser.read(K8S / "training" / "mlflow-auth.example.ini")
    auth = parser["mlflow"]
    assert auth["default_permission"] == "READ"
    assert "admin_password" not in auth, "the admin password comes from the Secret"
    postgres = find(rendered["training"], "Service", "mlflow-postgres")
    url = urlsplit(auth["database_uri"])
    assert url.scheme == "postgresql", "an emptyDir SQLite store would lose users on restart"
    assert (url.hostname, url.port) == ("mlflow-postgres", postgres["spec"]["ports"][0]["port"])


def test_training_job_logs_in_to_mlflow_from_a_secret(rendered: dict[str, Objects]) -> None:
    trainer = container(rendered["training"], "Job", "ai-image-detector-ddp")
    env = {e["name"]: e for e in trainer["env"]}
    for variable, key in [
        ("MLFLOW_TRACKING_USERNAME", "username"),
        ("MLFLOW_TRACKING_PASSWORD", "password"),
    ]:
        assert env[variable]["valueFrom"]["secretKeyRef"] == {"name": "mlflow-client", "key": key}


def test_every_kustomization_is_tested() -> None:
    found = {
        str(path.parent.relative_to(K8S))
        for path in K8S.rglob("kustomization.yaml")
        if "components" not in path.parts
    }
    assert found == set(KUSTOMIZATIONS)


def test_pod_matches_the_bento_container_image(production: Objects) -> None:
    # The manifest hard-codes facts of `bentoml containerize`'s image; check them against
    # BentoML's own template constants so an upgrade that moves them fails here.
    from aidetector.serving.bentoml_internals import container_user_and_home

    BENTO_UID_GID, BENTO_HOME = container_user_and_home()  # noqa: N806 - BentoML's names
    pod = find(production, "Deployment", API)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == BENTO_UID_GID
    api = pod["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in api["volumeMounts"]}
    assert mounts["metrics"] == os.path.join(BENTO_HOME, "prometheus_multiproc_dir")
    assert mounts["tmp"] == "/tmp"
    assert api["ports"][0]["containerPort"] == 3000  # `bentoml serve`'s default port


def test_release_receiver_runs_beside_mlflow_with_secrets_from_the_cluster(
    rendered: dict[str, Objects],
) -> None:
    training = rendered["training"]
    deployment = find(training, "Deployment", "release-receiver")
    assert deployment["spec"]["replicas"] == 1  # the replay memory is per process
    receiver = container(training, "Deployment", "release-receiver")
    assert receiver["image"].rsplit(":", 1)[0].endswith("/ai-image-detector-release")
    args = receiver["args"]
    assert args[:2] == ["webhook", "serve"]
    assert "release.host=0.0.0.0" in args
    assert "release.github.repository=$(GITHUB_REPOSITORY)" in args
    env = {e["name"]: e["valueFrom"] for e in receiver["env"]}
    for variable, key in [
        ("AIDETECTOR_WEBHOOK_SECRET", "webhook-secret"),
        ("GITHUB_TOKEN", "github-token"),
        ("ALERTMANAGER_TOKEN", "alertmanager-token"),
    ]:
        assert env[variable]["secretKeyRef"]["name"] == "release-receiver"
        assert env[variable]["secretKeyRef"]["key"] == key
    assert env["ALERTMANAGER_TOKEN"]["secretKeyRef"]["optional"] is True
    assert env["AIDETECTOR_WEBHOOK_SECRET"]["secretKeyRef"].get("optional") is not True
    assert receiver["securityContext"]["readOnlyRootFilesystem"] is True
    # The URL `webhook install` registers by default is this Service and port.
    url = urlsplit(load_params(REPO / "params.yaml").release.webhook_url)
    service_name, namespace = str(url.hostname).split(".")[:2]
    service = find(training, "Service", service_name)
    assert service["metadata"]["namespace"] == namespace
    [port] = service["spec"]["ports"]
    assert port["port"] == url.port and url.path == "/mlflow"
    [container_port] = receiver["ports"]
    assert f"release.port={container_port['containerPort']}" in args
    assert receiver["readinessProbe"]["httpGet"]["path"] == "/livez"


def test_mlflow_may_deliver_webhooks_to_the_receiver(rendered: dict[str, Objects]) -> None:
    mlflow = container(rendered["training"], "Deployment", "mlflow")
    env = {e["name"]: e for e in mlflow["env"]}
    assert env["MLFLOW_WEBHOOK_ALLOWED_SCHEMES"]["value"] == "http,https"
    assert env["MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS"]["value"] == "true"
    key = env["MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY"]["valueFrom"]["secretKeyRef"]
    assert key == {"name": "mlflow-webhooks", "key": "encryption-key"}
    example = (K8S / "training" / "secrets.example.env").read_text()
    assert "create secret generic release-receiver" in example
    assert "create secret generic mlflow-webhooks" in example
