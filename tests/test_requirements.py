"""Pins never slip below the security floors of requirements-minimums.txt."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
PINNED_FILES = ("requirements.txt", "requirements-serve.txt", "constraints.txt")


def requirements(path: Path) -> list[Requirement]:
    """The requirement lines of a pip requirements file (comments and options left out)."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith("-")]


FLOORS = {
    canonicalize_name(r.name): r.specifier for r in requirements(REPO / "requirements-minimums.txt")
}


def below_floor(pins: list[Requirement]) -> list[str]:
    """Pins (`name==version`) whose version is below the name's floor."""
    problems = []
    for pin in pins:
        floor = FLOORS.get(canonicalize_name(pin.name))
        pinned = [spec.version for spec in pin.specifier if spec.operator == "=="]
        if floor is not None and not all(floor.contains(v, prereleases=True) for v in pinned):
            problems.append(f"{pin} (needs {pin.name}{floor})")
    return problems


def test_the_floors_name_pillow_at_13_or_newer() -> None:
    assert FLOORS["pillow"].contains("13.0.0")
    assert not FLOORS["pillow"].contains("12.3.0")


@pytest.mark.parametrize("name", PINNED_FILES)
def test_every_pin_is_at_or_above_its_floor(name: str) -> None:
    pins = requirements(REPO / name)
    assert pins, f"{name} has no pins"
    assert below_floor(pins) == []


def test_every_floored_package_is_pinned_where_it_is_served() -> None:
    pinned = {canonicalize_name(r.name) for r in requirements(REPO / "requirements-serve.txt")}
    assert set(FLOORS) <= pinned


def test_a_pin_below_a_floor_is_caught() -> None:
    assert below_floor([Requirement("pillow==12.3.0")]) == ["pillow==12.3.0 (needs pillow>=13.0.0)"]
    assert below_floor([Requirement("Pillow==13.0.0"), Requirement("numpy==1.0.0")]) == []


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_the_installed_release_is_at_or_above_its_floor(name: str) -> None:
    assert FLOORS[name].contains(version(name), prereleases=True)
