"""Which file under conf/ (or which override) set a key of a composed config.

Hydra merges many files into one config and keeps no record of where each value came from;
an error about `trainer.max_epochs` is only useful if it says `conf/trainer/cpu.yaml`. The
choices Hydra made per group, the defaults lists of those files and the overrides are
enough to find it again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from aidetector.config.strict_model import Loc, dotted

# `${optimizer.lr}`: a value copied from another key (resolvers such as oc.env are not).
REFERENCE = re.compile(r"\$\{([A-Za-z_][\w.]*)\}")


def find_references(raw: Any, at: Loc = ()) -> dict[str, str]:
    """Return {dotted key: key it copies} for every `${other.key}` value of an unresolved config."""
    items: Any = []
    if isinstance(raw, dict):
        items = raw.items()
    elif isinstance(raw, list):
        items = enumerate(raw)
    found: dict[str, str] = {}
    for key, value in items:
        if isinstance(value, str) and (match := REFERENCE.fullmatch(value)):
            found[dotted((*at, key))] = match.group(1)
        else:
            found.update(find_references(value, (*at, key)))
    return found


def _sets_key(data: Any, keys: list[str]) -> bool:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return False
        data = data[key]
    return True


def file_setting(path: Path, keys: list[str]) -> Path | None:
    """Return the file that sets keys last: path itself or a file of its defaults list."""
    if not path.is_file():
        return None
    document = yaml.safe_load(path.read_text()) or {}
    defaults = list(document.pop("defaults", []))
    if "_self_" not in defaults:
        defaults.append("_self_")  # Hydra 1.1+: a config's own keys win over its defaults
    found = None
    for entry in defaults:
        if entry == "_self_":
            found = path if _sets_key(document, keys) else found
        elif isinstance(entry, str):  # `name` or `name@package`, in the same group folder
            name, _, package = entry.partition("@")
            if package and keys[:1] != [package]:
                continue
            child = path.parent / f"{name}.yaml"
            found = file_setting(child, keys[1:] if package else keys) or found
    return found


@dataclass(frozen=True)
class Composition:
    """What one Hydra composition was made of: enough to say where each key came from."""

    config_dir: Path
    # The option each group came from: {"data": "demo", "trainer": "cpu", ...}.
    choices: dict[str, str]
    overrides: list[str]
    # Keys whose value copies another key's: {"scheduler.max_lr": "optimizer.lr"}.
    references: dict[str, str]

    def copies_another_key(self, loc: Loc) -> bool:
        """Return whether the value at loc is another key's, copied by interpolation."""
        return dotted(loc) in self.references

    def source(self, loc: Loc) -> str:
        """Name what set the key at loc: a command-line override, or a file under conf/."""
        if dotted(loc) in self.references:
            return self.source(tuple(self.references[dotted(loc)].split(".")))
        keys = [str(part) for part in loc if isinstance(part, str)]
        key = ".".join(keys)
        for override in self.overrides:
            name = override.lstrip("+~").partition("=")[0]
            if name not in self.choices and (key == name or key.startswith(f"{name}.")):
                return f"override '{override}'"
        group_file = None
        candidates = []
        if "experiment" in self.choices:  # applied last, at the top level
            experiment = self.config_dir / "experiment" / f"{self.choices['experiment']}.yaml"
            candidates.append((experiment, keys))
        if keys and keys[0] in self.choices:
            group_file = self.config_dir / keys[0] / f"{self.choices[keys[0]]}.yaml"
            candidates.append((group_file, keys[1:]))
        candidates.append((self.config_dir / "config.yaml", keys))
        for path, path_keys in candidates:
            found = file_setting(path, path_keys)
            if found:
                return str(found)
        # A missing key is set nowhere: name the file it belongs in.
        return str(group_file or self.config_dir / "config.yaml")
