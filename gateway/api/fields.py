"""What the API's pydantic models share: their two bases, the field types they reuse, and how
their JSON Schema is written into the OpenAPI document.

Request models (gateway.api.bodies) check what a client sends; response models
(gateway.api.responses) build what the API answers; gateway.api.openapi generates the
document from both, with ``DocumentSchema``.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    model_validator,
)
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, SkipJsonSchema
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from gateway import textnorm

REF_TEMPLATE = "#/components/schemas/{model}"

T = TypeVar("T")


class Stated:
    """JSON Schema keywords the document states about a value that its model does not check:
    a moderation action checks it and refuses it with its own catalogue code
    (``console.errors.bad_decision``, ``console.errors.too_long`` with its limit...), or the
    database holds nothing else. ``Annotated[str, Stated(enum=[...])]``."""

    def __init__(self, **keywords: Any) -> None:
        self.keywords = keywords

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {**handler(schema), **self.keywords}


def _not_null(value: object) -> object:
    if value is None:
        raise PydanticCustomError("not_null", "may be left out, but not null")
    return value


# A field a body or an answer may leave out, but never sends as null: None in Python when
# absent, refused when a client sends null, and left out of a response
# (``responses.respond`` dumps what was set). The document lists it without "null".
Omittable = Annotated[T | SkipJsonSchema[None], BeforeValidator(_not_null)]

Id = Annotated[int, Field(ge=1)]
Count = Annotated[int, Field(ge=0)]
# gateway.exports.timestamp's string: ISO 8601 in UTC with a Z.
Timestamp = Annotated[str, Stated(format="date-time")]


class Request(BaseModel):
    """A request body: strictly typed (``"tags": "vélo"`` is not a list, ``1.0`` not an id),
    no unknown field."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _without_controls(cls, data: Any) -> Any:
        # A NUL would make PostgreSQL refuse the row (a 500) and an XLSX export fail; no
        # control character belongs in what a moderator writes (gateway.textnorm).
        return _without_controls(data)


def _without_controls(value: Any) -> Any:
    if isinstance(value, str):
        return textnorm.drop_controls(value)
    if isinstance(value, list):
        return [_without_controls(v) for v in value]
    if isinstance(value, dict):
        return {k: _without_controls(v) for k, v in value.items()}
    return value


def _open(schema: dict[str, Any]) -> None:
    # Responses are checked against their model when built, but the document leaves them open
    # to new keys: a client must not break when the API adds a field.
    schema.pop("additionalProperties", None)


class Response(BaseModel):
    """What the API answers, built from the database: strictly typed, every key described."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_open)


class DocumentSchema(GenerateJsonSchema):
    """pydantic's JSON Schema as the OpenAPI document writes it: no titles; no defaults (what
    an absent field means is in its description, and it differs: unchanged, or null); a
    nullable scalar as ``{"type": [T, "null"]}``; a model's docstring as one line; no
    ``additionalProperties: true`` (JSON Schema's default)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        json_schema = super().model_schema(schema)
        json_schema.pop("title", None)
        if "description" in json_schema:
            json_schema["description"] = " ".join(json_schema["description"].split())
        return json_schema

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        inner = self.generate_inner(schema["schema"])
        if "$ref" in inner or not isinstance(inner.get("type"), str):
            return self.get_flattened_anyof([inner, {"type": "null"}])
        nullable = {**inner, "type": [inner["type"], "null"]}
        if "enum" in inner:
            nullable["enum"] = [*inner["enum"], None]
        return nullable

    def dict_schema(self, schema: core_schema.DictSchema) -> JsonSchemaValue:
        json_schema = super().dict_schema(schema)
        if json_schema.get("additionalProperties") is True:
            del json_schema["additionalProperties"]
        return json_schema
