"""Recipe validation (pydantic) and milestone epochs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cpoison.training import Recipe


def test_defaults_are_the_paper_victim_recipe() -> None:
    r = Recipe()
    assert (r.lr, r.batch_size, r.momentum, r.weight_decay) == (0.01, 128, 0.9, 5e-4)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", 0),
        ("epochs", -3),
        ("batch_size", 0),
        ("lr", 0.0),
        ("lr", -0.1),
        ("momentum", 1.0),
        ("momentum", -0.1),
        ("weight_decay", -1e-4),
        ("gamma", 0.0),
        ("gamma", 1.5),
        ("crop_padding", -1),
        ("milestones", (0.0,)),
        ("milestones", (1.0,)),
        ("milestones", (0.5, 1.2)),
        ("milestones", (-0.25,)),
        ("epochs", "many"),
    ],
)
def test_bad_values_raise_validation_error(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        Recipe(**{field: value})
    err = info.value.errors()[0]
    if field == "milestones":
        assert "each in (0, 1)" in err["msg"]
    else:
        assert err["loc"] == (field,)


def test_unknown_field_is_rejected() -> None:
    with pytest.raises(ValidationError, match="epoch"):
        Recipe(epoch=3)


def test_recipe_is_frozen() -> None:
    r = Recipe()
    with pytest.raises(ValidationError):
        r.epochs = 5  # type: ignore[misc]
    assert r.epochs == 10


@pytest.mark.parametrize(
    ("epochs", "milestones", "expected"),
    [(10, (0.5, 0.75), [5, 8]), (40, (0.375, 0.625, 0.875), [15, 25, 35]), (1, (0.5,), [1]),
     (4, (0.1, 0.2), [1])],
)
def test_milestone_epochs(epochs: int, milestones: tuple[float, ...], expected: list[int]) -> None:
    assert Recipe(epochs=epochs, milestones=milestones).milestone_epochs() == expected
