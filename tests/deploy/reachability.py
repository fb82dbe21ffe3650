"""Who may connect to whom under a set of NetworkPolicies: the Kubernetes semantics, offline.

A connection is allowed when the source's egress and the destination's ingress both allow
it. A pod that no policy of a direction selects is open in that direction; once one selects
it, only what some rule of a selecting policy names is allowed. A rule with no `from`/`to`
admits every peer, one with no `ports` every port. An ipBlock matches only peers outside the
cluster here, as pod IPs are not stable enough to name by CIDR.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

Policy = dict[str, Any]


@dataclass(frozen=True)
class Pod:
    """A pod as policies see it: its namespace (and that namespace's labels), labels, ports."""

    namespace: str
    labels: dict[str, str]
    namespace_labels: dict[str, str] = field(default_factory=dict)
    # Container port names, for rules that name a port instead of numbering it.
    ports: dict[str, int] = field(default_factory=dict)

    def all_namespace_labels(self) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace, **self.namespace_labels}


@dataclass(frozen=True)
class External:
    """A peer outside the cluster (S3, a client on the internet)."""

    ip: str


Peer = Pod | External


def pod_from_template(workload: dict[str, Any], namespace: str | None = None) -> Pod:
    """The Pod a Deployment, StatefulSet or Job creates, with its container port names."""
    template = workload["spec"]["template"]
    ports = {
        port["name"]: port["containerPort"]
        for c in template["spec"]["containers"]
        for port in c.get("ports", [])
        if "name" in port
    }
    return Pod(
        namespace=namespace or workload["metadata"]["namespace"],
        labels=template["metadata"]["labels"],
        ports=ports,
    )


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector matches; an empty selector matches everything."""
    if selector.get("matchExpressions"):
        raise NotImplementedError("matchExpressions: extend reachability.selects first")
    return selector.get("matchLabels", {}).items() <= labels.items()


def _peer_matches(peer: dict[str, Any], policy_namespace: str, other: Peer) -> bool:
    if "ipBlock" in peer:
        if not isinstance(other, External):
            return False
        address = ipaddress.ip_address(other.ip)
        block = peer["ipBlock"]
        excluded = (ipaddress.ip_network(cidr) for cidr in block.get("except", []))
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in net for net in excluded
        )
    if not isinstance(other, Pod):
        return False
    if "namespaceSelector" in peer:
        in_namespace = selects(peer["namespaceSelector"], other.all_namespace_labels())
    else:
        in_namespace = other.namespace == policy_namespace
    return in_namespace and selects(peer.get("podSelector", {}), other.labels)


def _port_matches(rule: dict[str, Any], target: Pod | External, port: int, protocol: str) -> bool:
    if not rule.get("ports"):
        return True
    for allowed in rule["ports"]:
        if allowed.get("protocol", "TCP") != protocol:
            continue
        number = allowed.get("port")
        if isinstance(number, str):
            # A named port is looked up on the pod that receives the connection.
            number = target.ports.get(number) if isinstance(target, Pod) else None
        if number is None and "port" not in allowed:
            return True
        end = allowed.get("endPort", number)
        if number is not None and number <= port <= end:
            return True
    return False


def _allowed(
    policies: list[Policy],
    subject: Pod,
    direction: str,
    other: Peer,
    target: Pod | External,
    port: int,
    protocol: str,
) -> bool:
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == subject.namespace
        and selects(p["spec"]["podSelector"], subject.labels)
        and direction in p["spec"].get("policyTypes", ["Ingress"])
    ]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get(key, []):
            peers = rule.get(peers_key)
            peer_ok = not peers or any(
                _peer_matches(peer, subject.namespace, other) for peer in peers
            )
            if peer_ok and _port_matches(rule, target, port, protocol):
                return True
    return False


def can_connect(
    policies: list[Policy], source: Peer, destination: Peer, port: int, protocol: str = "TCP"
) -> bool:
    """Whether `source` may open a connection to `destination` on `port`."""
    if isinstance(source, Pod) and not _allowed(
        policies, source, "Egress", destination, destination, port, protocol
    ):
        return False
    if isinstance(destination, Pod):
        return _allowed(policies, destination, "Ingress", source, destination, port, protocol)
    return True
