"""Dataclasses that read and write themselves as JSON objects (the ``report.json`` schema).

A record's fields are its JSON keys, in order; nested records, lists, dicts, tuples and enums
convert recursively, following the field's type hint. Reading ignores no key silently: an unknown
key is an error, so a file and the records that read it cannot drift apart unnoticed. A missing
key takes the field's default (an error when the field has none). A field declared with
``metadata=OMIT_EMPTY`` is left out of the object while it is empty, so a key added for some
reports only (several camera streams) leaves every other report exactly as it was.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from aria_perception.bench.errors import ReportError

R = TypeVar("R", bound="JsonRecord")

#: Field metadata: leave the key out of the JSON object while the value is empty (None, [], {}).
OMIT_EMPTY = {"omit_empty": True}


def to_json(value: Any) -> Any:
    """``value`` as plain JSON data (records, enums, tuples and paths converted)."""
    if isinstance(value, JsonRecord):
        return value.to_dict()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    return value


def from_json(hint: Any, value: Any, where: str) -> Any:
    """``value`` (plain JSON data) as the type ``hint`` names; ``where`` names it in errors."""
    if value is None:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        # A union of plain types (str | float) keeps the value as JSON gave it.
        return from_json(options[0], value, where) if len(options) == 1 else value
    if isinstance(hint, type) and issubclass(hint, JsonRecord):
        if not isinstance(value, Mapping):
            raise ReportError(f"{where}: expected an object, got {type(value).__name__}")
        return hint.from_dict(value, where)
    if isinstance(hint, type) and issubclass(hint, Enum):
        try:
            return hint(value)
        except ValueError as err:
            raise ReportError(f"{where}: {err}") from err
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ReportError(f"{where}: expected a list, got {type(value).__name__}")
        item = args[0] if args else Any
        items = [from_json(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ReportError(f"{where}: expected an object, got {type(value).__name__}")
        item = args[1] if args else Any
        return {k: from_json(item, v, f"{where}.{k}") for k, v in value.items()}
    return value


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


class JsonRecord:
    """Mixin of a dataclass that is one JSON object of the report."""

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON object (fields in order; empty ``OMIT_EMPTY`` fields left out)."""
        out = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.metadata.get("omit_empty") and value in (None, [], {}):
                continue
            out[f.name] = to_json(value)
        return out

    @classmethod
    def from_dict(cls: type[R], data: Mapping[str, Any], where: str = "") -> R:
        """Read the record from a JSON object written by :meth:`to_dict`.

        Raises:
            ReportError: An unknown key, a missing key without default, or a value of the
                wrong kind; the message names the key's path.
        """
        where = where or cls.__name__
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ReportError(f"{where}: unknown key(s) {unknown}")
        hints = _hints(cls)
        values = {}
        for name, f in fields.items():
            if name in data:
                values[name] = from_json(hints[name], data[name], f"{where}.{name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ReportError(f"{where}: missing key {name!r}")
        return cls(**values)

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The JSON keys of this record, in order."""
        return tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
