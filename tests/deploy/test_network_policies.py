"""deploy/k8s NetworkPolicies: each namespace denies by default, and only the intended pods
reach the API, Redis, MLflow and Postgres (checked with the policy semantics, not by text)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from .conftest import REPO, Render
from .reachability import External, Pod, can_connect, pod_from_template

K8S = REPO / "deploy" / "k8s"
API_NAMESPACE = "ai-image-detector"
TRAINING_NAMESPACE = "ai-image-detector-training"
S3 = External("52.218.0.1")  # an AWS S3 address: outside the cluster, on 443
KUBE_DNS = Pod("kube-system", {"k8s-app": "kube-dns"}, ports={"dns": 53})

Objects = list[dict[str, Any]]


def workload(objects: Objects, kind: str, name: str) -> dict[str, Any]:
    [match] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return match


def policies(objects: Objects) -> Objects:
    return [o for o in objects if o["kind"] == "NetworkPolicy"]


def allow_all_egress(pod: Pod) -> dict[str, Any]:
    """A policy letting `pod` open any connection (what a user adds for a new client)."""
    return {
        "kind": "NetworkPolicy",
        "metadata": {"name": "allow-all-egress", "namespace": pod.namespace},
        "spec": {
            "podSelector": {"matchLabels": pod.labels},
            "policyTypes": ["Egress"],
            "egress": [{}],
        },
    }


@pytest.fixture(scope="module")
def production(render: Render) -> Objects:
    return render(K8S / "overlays" / "production")


@pytest.fixture(scope="module")
def training(render: Render) -> Objects:
    return render(K8S / "training")


@pytest.fixture(scope="module")
def scoring(render: Render) -> Objects:
    return render(K8S / "scoring")


@pytest.fixture(scope="module")
def cluster(production: Objects, training: Objects, scoring: Objects) -> Objects:
    """Every NetworkPolicy of the API and training namespaces, as one cluster holds them."""
    return policies(production) + policies(training) + policies(scoring)


def ray_pod(job: dict[str, Any], template: dict[str, Any]) -> Pod:
    """The pod KubeRay creates from one of a RayJob's templates."""
    return pod_from_template({"metadata": job["metadata"], "spec": {"template": template}})


@pytest.fixture(scope="module")
def pods(production: Objects, training: Objects, scoring: Objects) -> dict[str, Pod]:
    job = workload(scoring, "RayJob", "ai-image-detector-score")
    ray_cluster = job["spec"]["rayClusterSpec"]
    operator_label = {"ai-image-detector/kuberay-operator": "true"}
    return {
        "api": pod_from_template(workload(production, "Deployment", "ai-image-detector-api")),
        "redis": pod_from_template(workload(production, "Deployment", "ai-image-detector-redis")),
        "mlflow": pod_from_template(workload(training, "Deployment", "mlflow")),
        "postgres": pod_from_template(workload(training, "StatefulSet", "mlflow-postgres")),
        "ddp": pod_from_template(workload(training, "Job", "ai-image-detector-ddp")),
        "receiver": pod_from_template(workload(training, "Deployment", "release-receiver")),
        "alertmanager": Pod("monitoring", {"app.kubernetes.io/name": "alertmanager"}),
        "ray-head": ray_pod(job, ray_cluster["headGroupSpec"]["template"]),
        "ray-worker": ray_pod(job, ray_cluster["workerGroupSpecs"][0]["template"]),
        "kuberay-operator": Pod(
            "kuberay-system", {"app.kubernetes.io/name": "kuberay-operator"}, operator_label
        ),
        # Pods the policies must keep out: a stranger in each namespace and one elsewhere.
        "stranger-api-ns": Pod(API_NAMESPACE, {"app": "debug"}),
        "stranger-training-ns": Pod(TRAINING_NAMESPACE, {"app": "notebook"}),
        "stranger": Pod("default", {"app": "anything"}),
        "ingress": Pod("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"}),
        "prometheus": Pod("monitoring", {"app.kubernetes.io/name": "prometheus"}),
    }


@pytest.mark.parametrize(
    ("kustomization", "namespace"),
    [
        ("overlays/production", API_NAMESPACE),
        ("overlays/cpu", API_NAMESPACE),
        ("training", TRAINING_NAMESPACE),
    ],
)
def test_every_namespace_denies_ingress_and_egress_by_default(
    render: Render, kustomization: str, namespace: str
) -> None:
    deny = [
        p
        for p in policies(render(K8S / kustomization))
        if p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert [p["metadata"]["namespace"] for p in deny] == [namespace]


def test_only_api_pods_reach_redis(cluster: Objects, pods: dict[str, Pod]) -> None:
    redis = pods["redis"]
    assert can_connect(cluster, pods["api"], redis, 6379)
    assert not can_connect(cluster, pods["api"], redis, 6380), "only the Redis port"
    for name in ("stranger-api-ns", "stranger", "ingress", "prometheus", "ddp", "mlflow"):
        assert not can_connect(cluster, pods[name], redis, 6379), name
    # The API's labels in another namespace are not the API.
    impostor = Pod("default", pods["api"].labels)
    assert not can_connect(cluster, impostor, redis, 6379)


def test_redis_check_catches_a_policy_opened_to_all_pods(
    cluster: Objects, pods: dict[str, Pod]
) -> None:
    opened = yaml.safe_load(yaml.safe_dump(cluster))
    redis_policy = workload(opened, "NetworkPolicy", "ai-image-detector-redis-ingress")
    redis_policy["spec"]["ingress"][0]["from"] = [{"namespaceSelector": {}}]
    with pytest.raises(AssertionError, match="stranger"):
        test_only_api_pods_reach_redis(opened, pods)


def test_api_takes_requests_from_ingress_and_scrapes_from_monitoring(
    cluster: Objects, pods: dict[str, Pod]
) -> None:
    api, http = pods["api"], pods["api"].ports["http"]
    assert can_connect(cluster, pods["ingress"], api, http)
    assert can_connect(cluster, pods["prometheus"], api, http)
    for name in ("stranger", "stranger-api-ns", "redis", "ddp"):
        assert not can_connect(cluster, pods[name], api, http), name


def test_api_egress_is_redis_and_dns_only(cluster: Objects, pods: dict[str, Pod]) -> None:
    api = pods["api"]
    assert can_connect(cluster, api, KUBE_DNS, 53, "UDP")
    assert can_connect(cluster, api, KUBE_DNS, 53, "TCP")
    assert not can_connect(cluster, api, pods["mlflow"], 5000)
    assert not can_connect(cluster, api, S3, 443)
    assert not can_connect(cluster, pods["redis"], KUBE_DNS, 53, "UDP"), "Redis dials nothing"


def test_only_training_pods_and_the_labelled_deploy_job_reach_mlflow(
    cluster: Objects, pods: dict[str, Pod]
) -> None:
    mlflow, http = pods["mlflow"], pods["mlflow"].ports["http"]
    assert can_connect(cluster, pods["ddp"], mlflow, http)
    # Any pod of the training namespace gets in once its own egress lets it out (the
    # default deny holds it back until then); the same pod elsewhere does not.
    notebook = pods["stranger-training-ns"]
    assert not can_connect(cluster, notebook, mlflow, http)
    outsider = Pod("default", notebook.labels)
    with_egress = [*cluster, allow_all_egress(notebook), allow_all_egress(outsider)]
    assert can_connect(with_egress, notebook, mlflow, http)
    assert not can_connect(with_egress, outsider, mlflow, http)
    label = {"ai-image-detector/mlflow-client": "true"}
    deploy_job = Pod("actions-runners", {"app": "runner", **label}, namespace_labels=label)
    assert can_connect(cluster, deploy_job, mlflow, http)
    # Both labels are needed: a labelled pod in an unlabelled namespace stays out, and so
    # does an unlabelled pod in the labelled namespace.
    assert not can_connect(cluster, Pod("default", label), mlflow, http)
    assert not can_connect(cluster, Pod("actions-runners", {}, label), mlflow, http)
    for name in ("api", "redis", "stranger", "ingress"):
        assert not can_connect(cluster, pods[name], mlflow, http), name


def test_only_mlflow_reaches_postgres(cluster: Objects, pods: dict[str, Pod]) -> None:
    postgres, port = pods["postgres"], pods["postgres"].ports["postgres"]
    assert can_connect(cluster, pods["mlflow"], postgres, port)
    for name in ("ddp", "stranger-training-ns", "api", "stranger"):
        assert not can_connect(cluster, pods[name], postgres, port), name
    assert not can_connect(cluster, postgres, S3, 443), "Postgres dials nothing"


def test_training_pods_reach_each_other_mlflow_dns_and_s3(
    cluster: Objects, pods: dict[str, Pod]
) -> None:
    ddp, mlflow = pods["ddp"], pods["mlflow"]
    # torchrun's rendezvous port and an NCCL ephemeral port between ranks.
    for port in (29500, 45123):
        assert can_connect(cluster, ddp, ddp, port)
    assert can_connect(cluster, ddp, mlflow, 5000)
    assert can_connect(cluster, ddp, S3, 443) and can_connect(cluster, mlflow, S3, 443)
    assert can_connect(cluster, ddp, KUBE_DNS, 53, "UDP")
    assert not can_connect(cluster, ddp, S3, 80), "object storage over TLS only"
    assert not can_connect(cluster, ddp, pods["redis"], 6379)
    assert not can_connect(cluster, pods["stranger-training-ns"], ddp, 29500)


GITHUB_API = External("140.82.112.6")  # an api.github.com address


def test_only_mlflow_and_alertmanager_reach_the_release_receiver(
    cluster: Objects, pods: dict[str, Pod]
) -> None:
    receiver, http = pods["receiver"], pods["receiver"].ports["http"]
    assert can_connect(cluster, pods["mlflow"], receiver, http)
    assert can_connect(cluster, pods["alertmanager"], receiver, http)
    assert not can_connect(cluster, pods["mlflow"], receiver, http + 1), "only its port"
    # Prometheus shares Alertmanager's namespace, not its label; the label elsewhere is not it.
    impostor = Pod("default", pods["alertmanager"].labels)
    notebook = pods["stranger-training-ns"]
    with_egress = [*cluster, allow_all_egress(notebook), allow_all_egress(impostor)]
    for name in ("ddp", "api", "stranger", "prometheus", "ingress"):
        assert not can_connect(with_egress, pods[name], receiver, http), name
    assert not can_connect(with_egress, notebook, receiver, http)
    assert not can_connect(with_egress, impostor, receiver, http)


def test_release_receiver_dials_github_and_dns_only(cluster: Objects, pods: dict[str, Pod]) -> None:
    receiver = pods["receiver"]
    assert can_connect(cluster, receiver, GITHUB_API, 443)
    assert can_connect(cluster, receiver, KUBE_DNS, 53, "UDP")
    assert not can_connect(cluster, receiver, GITHUB_API, 80), "GitHub over TLS only"
    for name in ("mlflow", "postgres", "ddp", "redis", "api"):
        target = pods[name]
        for port in target.ports.values() or [5000]:
            assert not can_connect(cluster, receiver, target, port), name
    # MLflow may now dial the receiver, and still nothing else new in the namespace.
    assert not can_connect(cluster, pods["mlflow"], pods["ddp"], 29500)


def test_the_scoring_ray_cluster_reaches_itself_mlflow_s3_and_dns_only(
    cluster: Objects, pods: dict[str, Pod]
) -> None:
    head, worker = pods["ray-head"], pods["ray-worker"]
    # GCS on 6379, and the ports raylets, object managers and workers pick for themselves.
    for port in (6379, 8265, 45123):
        assert can_connect(cluster, worker, head, port)
        assert can_connect(cluster, head, worker, port)
    assert can_connect(cluster, head, pods["mlflow"], 5000)
    assert can_connect(cluster, worker, S3, 443) and can_connect(cluster, head, S3, 443)
    assert can_connect(cluster, worker, KUBE_DNS, 53, "UDP")
    assert not can_connect(cluster, worker, S3, 80), "object storage over TLS only"
    for name in ("redis", "api", "postgres"):
        port = next(iter(pods[name].ports.values()), 6379)
        assert not can_connect(cluster, head, pods[name], port), name
    for name in ("stranger-training-ns", "ddp", "stranger", "api"):
        assert not can_connect(cluster, pods[name], head, 6379), name


def test_only_the_kuberay_operator_reaches_the_ray_dashboard(
    cluster: Objects, pods: dict[str, Pod]
) -> None:
    head, operator = pods["ray-head"], pods["kuberay-operator"]
    dashboard = head.ports["dashboard"]
    assert can_connect(cluster, operator, head, dashboard)
    assert not can_connect(cluster, operator, head, 6379), "the dashboard port only"
    assert not can_connect(cluster, operator, pods["ray-worker"], dashboard)
    # Both the namespace label and the operator's own label are needed.
    unlabelled = Pod("kuberay-system", operator.labels)
    assert not can_connect(cluster, unlabelled, head, dashboard)
    impostor = Pod("kuberay-system", {"app": "debug"}, operator.namespace_labels)
    assert not can_connect(cluster, impostor, head, dashboard)
