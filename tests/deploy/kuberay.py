"""Offline validation of KubeRay objects, for which no schema package exists.

Two checks: the RayJob's own fields against the subset of KubeRay's ray.io/v1 API that
this project writes (field names and types read from KubeRay's RayJobSpec and
RayClusterSpec, every level closed, so a misspelt or misplaced key fails); and every pod
template inside it (head, worker groups, submitter) against Kubernetes' own PodTemplate
schema, strictly, as kubernetes-validate checks the built-in objects.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import kubernetes_validate

from .pods import pod_templates

STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
INT = {"type": "integer"}
OBJECT = {"type": "object"}
HEAD_GROUP = {
    "type": "object",
    "required": ["template"],
    "additionalProperties": False,
    "properties": {
        # Ray start flags: KubeRay takes only strings (num-cpus: "0", not 0).
        "rayStartParams": STRING_MAP,
        "template": OBJECT,
        "serviceType": {"type": "string"},
        "headService": OBJECT,
        "enableIngress": {"type": "boolean"},
        "resources": STRING_MAP,
        "labels": STRING_MAP,
    },
}
WORKER_GROUP = {
    "type": "object",
    "required": ["groupName", "template"],
    "additionalProperties": False,
    "properties": {
        "groupName": {"type": "string"},
        "replicas": INT,
        "minReplicas": INT,
        "maxReplicas": INT,
        "idleTimeoutSeconds": INT,
        "numOfHosts": INT,
        "suspend": {"type": "boolean"},
        "rayStartParams": STRING_MAP,
        "template": OBJECT,
        "scaleStrategy": OBJECT,
        "resources": STRING_MAP,
        "labels": STRING_MAP,
    },
}
RAY_CLUSTER_SPEC = {
    "type": "object",
    "required": ["headGroupSpec"],
    "additionalProperties": False,
    "properties": {
        "rayVersion": {"type": "string"},
        "enableInTreeAutoscaling": {"type": "boolean"},
        "autoscalerOptions": OBJECT,
        "headServiceAnnotations": STRING_MAP,
        "gcsFaultToleranceOptions": OBJECT,
        "suspend": {"type": "boolean"},
        "managedBy": {"type": "string"},
        "headGroupSpec": HEAD_GROUP,
        "workerGroupSpecs": {"type": "array", "items": WORKER_GROUP},
    },
}
RAY_JOB = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "ray.io/v1"},
        "kind": {"const": "RayJob"},
        "metadata": OBJECT,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "entrypoint": {"type": "string"},
                "runtimeEnvYAML": {"type": "string"},
                "jobId": {"type": "string"},
                "submissionMode": {
                    "enum": ["K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"]
                },
                "submitterPodTemplate": OBJECT,
                "submitterConfig": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"backoffLimit": INT},
                },
                "rayClusterSpec": RAY_CLUSTER_SPEC,
                "clusterSelector": STRING_MAP,
                "metadata": STRING_MAP,
                "entrypointNumCpus": {"type": "number"},
                "entrypointNumGpus": {"type": "number"},
                "entrypointResources": {"type": "string"},
                "activeDeadlineSeconds": {"type": "integer", "minimum": 1},
                "backoffLimit": {"type": "integer", "minimum": 0},
                "ttlSecondsAfterFinished": {"type": "integer", "minimum": 0},
                "shutdownAfterJobFinishes": {"type": "boolean"},
                "suspend": {"type": "boolean"},
                "managedBy": {"enum": ["ray.io/kuberay-operator", "kueue.x-k8s.io/multikueue"]},
                "deletionStrategy": OBJECT,
                "schedule": {"type": "string"},
            },
        },
    },
}


def kuberay_problems(obj: dict[str, Any], kubernetes_version: str) -> list[str]:
    """Every problem of a rendered RayJob: its own fields, then its pod templates."""
    if obj.get("kind") != "RayJob":
        return [f"no schema for {obj.get('apiVersion')} {obj.get('kind')}"]
    validator = jsonschema.Draft202012Validator(RAY_JOB)
    problems = [
        f"{'.'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
        for error in validator.iter_errors(obj)
    ]
    for group in obj.get("spec", {}).get("rayClusterSpec", {}).get("workerGroupSpecs", []):
        low, high = group.get("minReplicas", 0), group.get("maxReplicas", 2**31)
        if not low <= group.get("replicas", low) <= high:
            problems.append(f"worker group {group.get('groupName')}: replicas outside min..max")
    name = obj.get("metadata", {}).get("name", "?")
    for index, template in enumerate(pod_templates(obj)):
        wrapped = {
            "apiVersion": "v1",
            "kind": "PodTemplate",
            "metadata": {"name": f"{name}-{index}"},
            "template": template,
        }
        try:
            kubernetes_validate.validate(wrapped, kubernetes_version, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"pod template {index}: {error.message}")
    return problems
