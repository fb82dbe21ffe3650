"""The pod templates of a rendered object: a workload's, or each of a KubeRay RayJob's."""

from __future__ import annotations

from typing import Any


def ray_cluster_templates(cluster: dict[str, Any]) -> list[dict[str, Any]]:
    """The head's and every worker group's pod template of a RayClusterSpec."""
    head = cluster.get("headGroupSpec", {}).get("template")
    workers = [group.get("template") for group in cluster.get("workerGroupSpecs", [])]
    return [t for t in [head, *workers] if t]


def pod_templates(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """Every PodTemplateSpec in obj (Deployment, StatefulSet, Job, RayJob, RayCluster)."""
    spec = obj.get("spec", {})
    templates = [spec["template"]] if "template" in spec else []
    if obj.get("kind") == "RayCluster":
        templates += ray_cluster_templates(spec)
    if obj.get("kind") == "RayJob":
        templates += ray_cluster_templates(spec.get("rayClusterSpec", {}))
        if "submitterPodTemplate" in spec:
            templates.append(spec["submitterPodTemplate"])
    return templates


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """Every container and init container of obj's pod templates."""
    return [
        box
        for template in pod_templates(obj)
        for box in template["spec"]["containers"] + template["spec"].get("initContainers", [])
    ]
