"""Strict pydantic checks for the TOML a user writes (matrices, workloads), with one-line errors.

Types are TOML's own: an integer stays an integer, a float must be finite, ``true`` is not ``1``
and ``"5"`` is not 5. The first problem becomes ``key: what is wrong`` in the words the command
lines use (``'lots' is not a number``, ``-5 must be above 0``, ``unknown model 'x' (valid: …)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)
CONSTRAINTS = ("greater_than", "greater_than_equal", "finite_number")
FIRST = ("extra_forbidden", "missing")  # reported before any value's problem

Model = TypeVar("Model", bound=BaseModel)


class TableError(ValueError):
    """One key of a table is wrong: ``key`` and what is wrong with it, for a one-line error."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


def number(
    *, at_least: float | None = None, above: float | None = None, whole: bool = False
) -> Any:
    """A TOML number's annotation with its lower bound: an int stays an int, a float is finite."""
    bound = {"ge": at_least} if at_least is not None else {"gt": above} if above is not None else {}
    if whole:
        return Annotated[int, Field(**bound)]  # type: ignore[call-overload]
    # The bound applies to either: an int branch bounded by 0.5 would not build.
    finite = Annotated[float, Field(allow_inf_nan=False)]
    return Annotated[int | finite, Field(**bound)]  # type: ignore[call-overload]


def choice(options: tuple[str, ...]) -> Any:
    """The annotation of a string that must be one of ``options``."""
    return Literal[options]


def validated(
    model: type[Model], table: Mapping[str, Any], nouns: Mapping[str, str] | None = None
) -> Model:
    """``model`` built from ``table``; TableError names the first problem (``nouns``: what a
    choice is called in its message, by key)."""
    try:
        return model.model_validate(dict(table))
    except ValidationError as exc:
        errors = exc.errors()
        rank = {kind: index for index, kind in enumerate(FIRST)}
        first = min(errors, key=lambda error: rank.get(error["type"], len(FIRST)))
        key = str(first["loc"][0])
        if first["type"] == "extra_forbidden":
            valid = ", ".join(sorted(model.model_fields))
            raise TableError(key, f"unknown key (valid: {valid})") from None
        if first["type"] == "missing":
            raise TableError(key, "is required") from None
        mine = [e for e in errors if e["loc"][:1] == (first["loc"][0],)]
        field = model.model_fields[key].annotation
        raise TableError(key, _problem(mine, (nouns or {}).get(key, key), field)) from None


def checked(key: str, annotation: Any, value: Any, noun: str = "") -> Any:
    """``value`` checked against ``annotation`` (from ``number`` or ``choice``); TableError
    names ``key`` when it does not fit."""
    try:
        return TypeAdapter(annotation, config=ConfigDict(strict=True)).validate_python(value)
    except ValidationError as exc:
        raise TableError(key, _problem(exc.errors(), noun or key, annotation)) from None


def _problem(errors: list[Any], noun: str, annotation: Any) -> str:
    """One value's problem in the suite's words, from every error pydantic gave for it."""
    chosen = next((e for e in errors if e["type"] in CONSTRAINTS), errors[0])
    value, kind, limits = chosen["input"], chosen["type"], chosen.get("ctx", {})
    if kind == "greater_than":
        return f"{value} must be above {limits['gt']:g}"
    if kind == "greater_than_equal":
        return f"{value} must be at least {limits['ge']:g}"
    if kind == "literal_error":
        return f"unknown {noun} {value!r} (valid: {', '.join(_options(annotation))})"
    if kind == "bool_type":
        return f"{value!r} is not true or false"
    if kind == "int_type" and not any(e["type"] == "float_type" for e in errors):
        return f"{value!r} is not a whole number"
    if kind in ("int_type", "float_type", "finite_number"):
        return f"{value!r} is not a number"
    return str(chosen["msg"])


def _options(annotation: Any) -> tuple[str, ...]:
    """The strings a ``choice`` annotation allows (inside ``X | None`` too)."""
    for part in (annotation, *get_args(annotation)):
        if getattr(part, "__origin__", None) is Literal:
            return get_args(part)
    return ()
