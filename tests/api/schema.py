"""A small JSON Schema checker for the subset the API's OpenAPI document uses.

``jsonschema`` is not installed in the project's environment and the project does not
depend on it; this covers what gateway/api/openapi.py writes ($ref, type, properties,
required, additionalProperties, items, enum, allOf, oneOf, anyOf, bounds, date formats) and,
in addition, reports any key of a response that the document does not describe.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "null": type(None),
}
KNOWN = {
    "$ref",
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "allOf",
    "oneOf",
    "anyOf",
    "minimum",
    "maximum",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "format",
    "description",
    "examples",
    "default",
}


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def _is(kind: str, value: Any) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, TYPES[kind])


def documented(document: dict[str, Any], schema: dict[str, Any]) -> set[str]:
    """Every property name a schema describes, through $ref and allOf."""
    if "$ref" in schema:
        return documented(document, resolve(document, schema["$ref"]))
    names = set(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        names |= documented(document, part)
    return names


def errors(
    document: dict[str, Any],
    schema: dict[str, Any],
    value: Any,
    at: str = "$",
    also_described: frozenset[str] = frozenset(),
) -> list[str]:
    """What is wrong with ``value`` under ``schema``; ``also_described``: keys that a schema
    around this one (an allOf) describes."""
    unknown = set(schema) - KNOWN
    if unknown:
        return [f"{at}: schema keywords this checker does not know: {sorted(unknown)}"]
    if "$ref" in schema:
        return errors(document, resolve(document, schema["$ref"]), value, at, also_described)
    found: list[str] = []
    around = also_described | documented(document, schema)
    for part in schema.get("allOf", []):
        found += errors(document, part, value, at, around)
    if "oneOf" in schema:
        passing = [s for s in schema["oneOf"] if not errors(document, s, value, at)]
        if len(passing) != 1:
            found.append(f"{at}: matches {len(passing)} of oneOf, not exactly one")
    if "anyOf" in schema and all(errors(document, s, value, at) for s in schema["anyOf"]):
        found.append(f"{at}: matches none of anyOf")
    if "type" in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is(k, value) for k in kinds):
            return [*found, f"{at}: {value!r} is not {kinds}"]
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{at}: {value!r} not in {schema['enum']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            found.append(f"{at}: {value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            found.append(f"{at}: {value} > {schema['maximum']}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", 1e9):
            found.append(f"{at}: length {len(value)} out of bounds")
        try:
            if schema.get("format") == "date-time":
                datetime.fromisoformat(value)
            elif schema.get("format") == "date":
                date.fromisoformat(value)
        except ValueError:
            found.append(f"{at}: {value!r} is not a {schema['format']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", 1e9):
            found.append(f"{at}: {len(value)} items out of bounds")
        if "items" in schema:
            for index, item in enumerate(value):
                found += errors(document, schema["items"], item, f"{at}[{index}]")
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                found.append(f"{at}: {name!r} is required")
        properties = schema.get("properties", {})
        for name, item in value.items():
            if name in properties:
                found += errors(document, properties[name], item, f"{at}.{name}")
        if properties:
            extra = sorted(set(value) - around)
            if extra:
                found.append(f"{at}: keys the document does not describe: {extra}")
    return found
