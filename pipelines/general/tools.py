"""Typed tools for general-agent environments.

A tool is a plain function `fn(state, **arguments)` decorated with `@tool`. Its JSON schema
(the one the agent sees) comes from its type hints, and its descriptions from its Google-
style docstring, so the docstring is written like a prompt. Arguments are validated
strictly (no "5" for 5) by a pydantic model built once per tool, which keeps a step cheap.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from envsynth.errors import ConfigError, ToolError, tool_arguments
from envsynth.schema import ToolSpec

State = dict[str, Any]


def find_record(
    rows: Iterable[dict[str, Any]], value: object, missing: str, key: str = "id"
) -> dict[str, Any]:
    """The first row whose `key` equals `value`.

    Args:
        rows: the table to search, in order.
        value: the value to look for.
        missing: the message of the `ToolError` raised when no row matches; it is shown to
            the agent, so it says where valid values can be found.
        key: the field compared with `value`.

    Raises:
        ToolError: no row matches.
    """
    for row in rows:
        if row[key] == value:
            return row
    raise ToolError(missing)


@dataclass(frozen=True)
class Tool:
    """A tool bound to no state: `call(state, raw_arguments)` runs it on one."""

    name: str
    fn: Callable[..., Any]
    spec: ToolSpec
    writes: bool
    arguments: type[BaseModel]

    def parse(self, raw: str | dict[str, Any]) -> dict[str, Any]:
        """Validate raw JSON text or a dict against the schema; a `ToolError` says what is wrong."""
        raw = tool_arguments(raw, self.name)
        try:
            parsed = self.arguments.model_validate(raw)
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}"
                for err in e.errors()
            )
            raise ToolError(f"invalid arguments for {self.name}: {problems}") from None
        return {k: getattr(parsed, k) for k in type(parsed).model_fields}

    def call(self, state: State, raw: str | dict[str, Any]) -> Any:
        kwargs = self.parse(raw)
        return self.fn(state, **kwargs)


_SECTIONS = {"Args", "Arguments", "Returns", "Raises", "Yields", "Example", "Examples", "Note"}
_ARG_START = re.compile(r"^ {4}(\w+)(?: \([^)]*\))?:\s*(.*)$")


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into its summary and per-argument descriptions."""
    summary: list[str] = []
    args: dict[str, str] = {}
    section, current = "summary", None
    for line in inspect.cleandoc(doc or "").splitlines():
        stripped = line.strip()
        if not line.startswith(" ") and stripped[:-1] in _SECTIONS and stripped.endswith(":"):
            section, current = stripped[:-1], None
        elif section == "summary":
            summary.append(stripped)
        elif section in ("Args", "Arguments"):
            m = _ARG_START.match(line)
            if m:
                current = m.group(1)
                args[current] = m.group(2).strip()
            elif current and stripped:
                args[current] += " " + stripped
    return " ".join(s for s in summary if s), args


def _strip_titles(schema: Any) -> Any:
    """Drop pydantic's auto-generated `title`s: noise in a prompt.

    Only the `title` keyword goes: the keys of `properties` and `$defs` are names, and a
    parameter may be called "title" (meeting_rooms' `book_room` has one).
    """
    if isinstance(schema, dict):
        return {
            k: (
                {name: _strip_titles(sub) for name, sub in v.items()}
                if k in ("properties", "$defs") and isinstance(v, dict)
                else _strip_titles(v)
            )
            for k, v in schema.items()
            if k != "title"
        }
    if isinstance(schema, list):
        return [_strip_titles(v) for v in schema]
    return schema


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    schema = _strip_titles(model.model_json_schema())
    schema.setdefault("properties", {})
    schema["additionalProperties"] = False
    return schema


def tool(*, writes: bool = False, name: str | None = None) -> Callable[[Callable[..., Any]], Tool]:
    """Turn `fn(state, **arguments)` into a `Tool`.

    Args:
        writes: whether the tool changes the state (shown to graders and in cards).
        name: the tool's name as the agent sees it; the function's name by default.
    """

    def make(fn: Callable[..., Any]) -> Tool:
        summary, arg_docs = _parse_docstring(fn.__doc__ or "")
        if not summary:
            raise ConfigError(f"tool {fn.__name__} needs a docstring: it is the agent's prompt")
        params = list(inspect.signature(fn, eval_str=True).parameters.values())[1:]
        fields: dict[str, Any] = {}
        for p in params:
            if p.annotation is inspect.Parameter.empty:
                raise ConfigError(f"tool {fn.__name__}: argument {p.name} needs a type hint")
            default = ... if p.default is inspect.Parameter.empty else p.default
            fields[p.name] = (p.annotation, Field(default, description=arg_docs.get(p.name)))
        model = create_model(  # type: ignore[call-overload]
            f"{fn.__name__}_arguments",
            __config__=ConfigDict(extra="forbid", strict=True),
            **fields,
        )
        spec = ToolSpec(name=name or fn.__name__, description=summary, parameters=schema_of(model))
        return Tool(name=spec.name, fn=fn, spec=spec, writes=writes, arguments=model)

    return make


def submit_tool(answer_model: type[BaseModel] | None, description: str) -> Tool:
    """The `submit` tool that ends an episode; its arguments are the family's answer model."""
    model = answer_model or create_model(
        "NoAnswer", __config__=ConfigDict(extra="forbid", strict=True)
    )
    config = model.model_config
    if config.get("extra") != "forbid" or not config.get("strict"):
        raise ConfigError(f"answer model {model.__name__} must be strict and forbid extra fields")
    spec = ToolSpec(name="submit", description=description, parameters=schema_of(model))

    def fn(state: State, **answer: Any) -> str:
        return "submitted"

    return Tool(name="submit", fn=fn, spec=spec, writes=False, arguments=model)
