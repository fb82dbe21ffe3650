"""The base of every settings model, and the one-line description of what failed to validate.

Only pydantic is imported here: the serving image, which has no Hydra or Lightning, uses it too.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Callable
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails

Loc = tuple[str | int, ...]


class StrictModel(BaseModel):
    """Strict, frozen, no unknown keys: a typo or a wrong type fails where the config is read.

    Strict still takes an int where a float is expected (YAML writes `max_lr: 1`), and no
    string is ever converted to a number or a boolean.
    """

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")


def _unwrap(annotation: Any) -> Any:
    """Return the annotation without Annotated[...] and without an `| None`."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return _unwrap(members[0])
    return annotation


def _field_names(model: type[BaseModel]) -> dict[str, Any]:
    """Return the keys a model reads (aliases where set) and their annotations."""
    return {(f.alias or name): f.annotation for name, f in model.model_fields.items()}


def config_path(model: type[BaseModel], loc: Loc) -> tuple[Loc, list[str]]:
    """Return the part of loc that names config keys, and the keys allowed beside the last one.

    pydantic adds union members ('int', 'str') to the location of a union's errors; those are
    not keys and are dropped.
    """
    annotation: Any = model
    path: list[str | int] = []
    siblings: list[str] = []
    for part in loc:
        annotation = _unwrap(annotation)
        origin = get_origin(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            fields = _field_names(annotation)
            siblings = list(fields)
            if part not in fields:
                path.append(part)  # an unknown key: still the name to report
                break
            annotation = fields[str(part)]
        elif origin is dict and isinstance(part, str):
            annotation = get_args(annotation)[1]
        elif origin in (list, tuple) and isinstance(part, int):
            annotation = get_args(annotation)[0]
        else:
            break
        path.append(part)
    return tuple(path), siblings


def dotted(loc: Loc) -> str:
    """Return a location as the dotted key people write: `evaluate.suite.variants[0].kind`."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _closest(key: str, known: list[str]) -> str | None:
    matches = difflib.get_close_matches(key, known, n=1)
    return matches[0] if matches else None


def _problem(errors: list[ErrorDetails], siblings: list[str], key: str) -> str:
    kind = errors[0]["type"]
    if kind == "extra_forbidden":
        close = _closest(key, siblings)
        return "unknown key" + (f" (did you mean {close}?)" if close else "")
    if kind == "missing":
        return "required key is missing"
    expected: list[str] = []
    for error in errors:
        message = error["msg"]
        prefix = "Input should be "
        if message.startswith(prefix):
            message = message.removeprefix(prefix)
            expected.append(message if expected else f"expected {message}")
        else:
            expected.append(message[0].lower() + message[1:])
    return f"{' or '.join(expected)}, got {_shown(errors[0]['input'])}"


def describe_validation_error(
    error: ValidationError,
    model: type[BaseModel],
    prefix: Loc = (),
    derived: Callable[[Loc], bool] = lambda _: False,
) -> tuple[Loc, str]:
    """Return the first invalid key's location and one line: `key: what is wrong, got VALUE`.

    Keys for which derived(loc) is true copy another key's value: they come last, so the
    line names the key that was actually written wrong. Missing keys come after the rest: a
    misspelt key is both unknown and missing, and "unknown key (did you mean ...)" says more.
    """
    located = [(config_path(model, d["loc"]), d) for d in error.errors()]
    missing = {loc for (loc, _), d in located if d["type"] == "missing"}
    locs = list({loc: None for (loc, _), _ in located})
    # Stable: otherwise the first in field order.
    loc = sorted(locs, key=lambda at: (derived(at), at in missing))[0]
    same = [d for (at, _), d in located if at == loc]
    siblings = next(names for (at, names), _ in located if at == loc)
    key = str(loc[-1]) if loc else ""
    line = f"{dotted((*prefix, *loc))}: {_problem(same, siblings, key)}"
    rest = set(locs) - {loc}
    if same[0]["type"] == "extra_forbidden" and (close := _closest(key, siblings)):
        rest.discard((*loc[:-1], close))  # the same typo, already named by the suggestion
    if rest:
        line += f" (and {len(rest)} more problem{'s' if len(rest) > 1 else ''})"
    return loc, line
