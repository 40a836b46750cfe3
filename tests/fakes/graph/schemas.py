"""JSON Schemas for Graph answers, built from the official type descriptions (CSDL).

``schema_for("driveItem")`` reads ``msgraph_v1_types.csdl.xml`` next to this module: an excerpt
of microsoftgraph/msgraph-metadata ``schemas/v1.0-Prod.csdl`` (MIT licence), copied from
``/work/shared/apis/msgraph_v1_files_sites_types.csdl.xml`` so the tests need nothing outside the
repository. Each property with its EDM type, base types folded in. Closed types
admit no other property than their own and OData annotations (``@odata.type``...); open ones
(``OpenType="true"``: driveItem, identitySet...) admit more, as Graph does. Types the excerpt does
not describe (audio, image...) are only required to be objects. Nothing is "required": Graph
leaves out whatever ``$select`` or the operation does not return; tests assert presence themselves.
"""
import re
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path

import jsonschema

CSDL_PATH = Path(__file__).with_name("msgraph_v1_types.csdl.xml")
EDM = {"Edm.String": {"type": "string"}, "Edm.Boolean": {"type": "boolean"}, "Edm.Int32": {"type": "integer"},
       "Edm.Int64": {"type": "integer"}, "Edm.Double": {"type": "number"},
       "Edm.DateTimeOffset": {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$"},
       "Edm.Guid": {"type": "string"}, "Edm.Stream": {}}


@cache
def _types() -> dict[str, dict]:
    with open(CSDL_PATH, encoding="utf-8") as handle:
        text = re.sub(r"<\?xml[^>]*\?>", "", handle.read())
    root = ET.fromstring(f"<types>{text}</types>")
    types = {}
    for element in root:
        if element.tag not in {"EntityType", "ComplexType"}:
            continue
        types[element.get("Name")] = {
            "base": (element.get("BaseType") or "").removeprefix("graph.") or None,
            "open": element.get("OpenType") == "true",
            "properties": {p.get("Name"): (p.get("Type"), p.get("Nullable") != "false")
                           for p in element if p.tag == "Property"},
        }
    return types


def _property_schema(type_name: str, nullable: bool) -> dict:
    collection = re.fullmatch(r"Collection\((.+)\)", type_name)
    if collection:
        schema = {"type": "array", "items": _property_schema(collection.group(1), False)}
    elif type_name in EDM:
        schema = dict(EDM[type_name])
    elif type_name.removeprefix("graph.") in _types():
        schema = {"$ref": f"#/$defs/{type_name.removeprefix('graph.')}"}
    else:
        schema = {"type": "object"}
    return {"anyOf": [schema, {"type": "null"}]} if nullable else schema


def _definition(name: str) -> dict:
    properties, open_type, current = {}, False, name
    while current:
        described = _types()[current]
        open_type = open_type or described["open"]
        for prop, (type_name, nullable) in described["properties"].items():
            properties.setdefault(prop, _property_schema(type_name, nullable))
        current = described["base"]
    schema = {"type": "object", "properties": properties}
    if not open_type:
        schema["patternProperties"] = {"@": {}}
        schema["additionalProperties"] = False
    return schema


def schema_for(name: str) -> dict:
    """A draft 2020-12 schema for one Graph type, e.g. "driveItem", "permission", "site"."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": f"#/$defs/{name}",
            "$defs": {type_name: _definition(type_name) for type_name in _types()}}


@cache
def validator_for(name: str) -> jsonschema.Draft202012Validator:
    """A ready validator (``.validate(instance)`` raises ``jsonschema.ValidationError``).

    Built once per type: ``jsonschema.validate`` would check the schema itself on every call.
    """
    schema = schema_for(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)
