"""Strict settings models: what they accept, and the one line that says what they refused."""

from __future__ import annotations

import pytest
from pydantic import Field, ValidationError

from aidetector.config.strict_model import StrictModel, describe_validation_error


class Inner(StrictModel):
    image_size: int
    mean: float


class Outer(StrictModel):
    devices: int | str
    inner: Inner
    models: dict[str, Inner] = Field(default_factory=dict)


def first_line(data: dict[str, object]) -> str:
    with pytest.raises(ValidationError) as error:
        Outer.model_validate(data)
    return describe_validation_error(error.value, Outer)[1]


def test_ints_pass_for_floats_but_strings_never_become_numbers() -> None:
    model = Outer.model_validate({"devices": 1, "inner": {"image_size": 32, "mean": 1}})
    assert model.inner.mean == 1.0 and isinstance(model.inner.mean, float)
    assert first_line({"devices": 1, "inner": {"image_size": "32", "mean": 1}}) == (
        "inner.image_size: expected a valid integer, got '32'"
    )


def test_an_unknown_key_suggests_the_closest_known_one() -> None:
    line = first_line({"devices": 1, "inner": {"image_size": 32, "mean": 1.0, "maen": 2}})
    assert line == "inner.maen: unknown key (did you mean mean?)"


def test_a_union_lists_every_accepted_type_once() -> None:
    line = first_line({"devices": [1], "inner": {"image_size": 32, "mean": 1.0}})
    assert line == "devices: expected a valid integer or a valid string, got [1]"


def test_mapping_keys_are_part_of_the_name_and_other_problems_are_counted() -> None:
    line = first_line({"devices": 1, "inner": {"mean": 1.0}, "models": {"vit": {"mean": "x"}}})
    assert line == "models.vit.mean: expected a valid number, got 'x' (and 2 more problems)"


def test_derived_keys_are_reported_after_the_ones_they_copy() -> None:
    with pytest.raises(ValidationError) as error:
        Outer.model_validate({"devices": 1, "inner": {"image_size": "a", "mean": "b"}})
    loc, line = describe_validation_error(
        error.value, Outer, derived=lambda at: at == ("inner", "image_size")
    )
    assert loc == ("inner", "mean") and line.startswith("inner.mean: expected a valid number")


def test_models_are_frozen() -> None:
    model = Inner(image_size=32, mean=0.5)
    with pytest.raises(ValidationError):
        model.image_size = 64  # type: ignore[misc]


def test_a_misspelt_key_is_one_problem_reported_as_unknown() -> None:
    line = first_line({"devices": 1, "inner": {"imgae_size": 32, "mean": 1.0}})
    assert line == "inner.imgae_size: unknown key (did you mean image_size?)"


def test_a_missing_key_is_named_when_it_is_the_only_problem() -> None:
    line = first_line({"devices": 1, "inner": {"mean": 1.0}})
    assert line == "inner.image_size: required key is missing"
