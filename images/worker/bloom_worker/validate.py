"""Typed reads of request fields: every error names the field (`param`), as OpenAI's errors do.

A field set to JSON null counts as absent. `refuse_unknown` refuses every field an endpoint does not
implement, so nothing a client sends is silently ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

Body = Mapping[str, object]


@dataclass
class ApiError(Exception):
    status: int
    message: str
    param: str | None = None
    type: str = "invalid_request_error"
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message

    def body(self) -> dict[str, object]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def given(body: Body, name: str) -> bool:
    return body.get(name) is not None


def refuse_unknown(body: Body, supported: Iterable[str], where: str = "") -> None:
    known = set(supported)
    for name, value in body.items():
        if name not in known and value is not None:
            raise ApiError(400, f"unsupported field '{where}{name}': this server does not implement it", where + name)


def integer(body: Body, name: str, default: int | None, lo: int, hi: int, where: str = "") -> int | None:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"{where}{name} must be an integer", where + name)
    if not lo <= value <= hi:
        raise ApiError(400, f"{where}{name}={value} is outside [{lo}, {hi}]", where + name)
    return value


def number(
    body: Body, name: str, default: float, lo: float, hi: float, where: str = "", lo_open: bool = False
) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ApiError(400, f"{where}{name} must be a number", where + name)
    if not (lo < value if lo_open else lo <= value) or not value <= hi:
        bound = f"{'(' if lo_open else '['}{lo:g}, {hi:g}]"
        raise ApiError(400, f"{where}{name}={value:g} is outside {bound}", where + name)
    return float(value)


def boolean(body: Body, name: str, default: bool, where: str = "") -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ApiError(400, f"{where}{name} must be true or false", where + name)
    return value


def string(body: Body, name: str, where: str = "") -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise ApiError(400, f"{where}{name} must be a string", where + name)
    return value


def obj(body: Body, name: str, where: str = "") -> Body:
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ApiError(400, f"{where}{name} must be an object", where + name)
    return value


def strings(body: Body, name: str, most: int, where: str = "") -> tuple[str, ...]:
    """A string or a list of at most `most` non-empty strings (OpenAI's `stop`)."""
    value = body.get(name)
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(s, str) and s for s in items) or len(items) > most:
        raise ApiError(
            400, f"{where}{name} must be a non-empty string or a list of at most {most} of them", where + name
        )
    return tuple(items)


def token_ids(value: object, vocab_size: int, param: str) -> list[int]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise ApiError(400, f"{param} must be a non-empty list of integer token ids", param)
    bad = [v for v in value if not 0 <= v < vocab_size]
    if bad:
        raise ApiError(400, f"{param} holds ids outside the vocabulary [0, {vocab_size}): {bad[:5]}", param)
    return value
