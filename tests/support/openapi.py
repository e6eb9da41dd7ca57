"""Checks a real answer of the API against what /api/v1/openapi.json declares for it: the
part of JSON Schema that FastAPI and Pydantic write (no jsonschema package in the project).
A date-time must carry its offset, as the API promises."""

from __future__ import annotations

import re
from datetime import date, datetime

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}
_DATE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def response_schema(spec: dict, path: str, method: str, status: int) -> dict:
    """The schema of the JSON body `method path` declares for `status` (AssertionError if none)."""
    op = spec["paths"][path][method.lower()]
    declared = op["responses"].get(str(status))
    assert declared is not None, f"{method} {path}: {status} is not in the spec ({sorted(op['responses'])})"
    schema = declared.get("content", {}).get("application/json", {}).get("schema")
    assert schema, f"{method} {path}: {status} declares no JSON body"
    return schema


def problems(spec: dict, schema: dict, value, where: str = "$") -> list[str]:
    """Where `value` does not fit `schema` (empty when it fits)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return problems(spec, spec["components"]["schemas"][name], value, where)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            tried = [problems(spec, s, value, where) for s in schema[key]]
            return [] if any(not t for t in tried) else [f"{where}: fits none of {key}: {tried}"]
    out = [p for s in schema.get("allOf", []) for p in problems(spec, s, value, where)]
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        if not any(_TYPES[k](value) for k in kinds):
            return out + [f"{where}: {value!r:.80} is not {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{where}: {value!r} not in {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        out.append(f"{where}: {value!r} is not {schema['const']!r}")
    if isinstance(value, str):
        out += _format(schema.get("format"), value, where)
    if isinstance(value, dict):
        props = schema.get("properties", {})
        out += [f"{where}: {k} missing" for k in schema.get("required", []) if k not in value]
        extra = schema.get("additionalProperties", True)
        for k, v in value.items():
            if k in props:
                out += problems(spec, props[k], v, f"{where}.{k}")
            elif extra is False:
                out.append(f"{where}: {k} is not declared")
            elif isinstance(extra, dict):
                out += problems(spec, extra, v, f"{where}.{k}")
    if isinstance(value, list):
        fixed = schema.get("prefixItems", [])
        for i, v in enumerate(value):
            item = fixed[i] if i < len(fixed) else schema.get("items")
            if item is not None:
                out += problems(spec, item, v, f"{where}[{i}]")
    return out


def _format(fmt: str | None, value: str, where: str) -> list[str]:
    if fmt == "date-time" and not (_DATE_TIME.match(value) and datetime.fromisoformat(value).tzinfo):
        return [f"{where}: {value!r} is not a date-time with an offset"]
    if fmt == "date":
        try:
            date.fromisoformat(value)
        except ValueError:
            return [f"{where}: {value!r} is not a date"]
    return []
