"""Test helpers for the fake servers: validate bodies against the OpenAPI files, walk ``_links.next``."""
import json
import os
from pathlib import Path

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

# ../shared/apis beside the checkout, as in CI; KBSEARCH_SHARED_DIR overrides.
APIS = Path(os.environ.get("KBSEARCH_SHARED_DIR", Path(__file__).resolve().parents[3] / "shared")) / "apis"
SPECS = {name: json.loads((APIS / f"confluence_{name}_subset.openapi.json").read_text()) for name in ("v1", "v2")}
REGISTRY = Registry().with_resources(
    (f"urn:confluence-{name}", Resource.from_contents(spec, default_specification=DRAFT202012))
    for name, spec in SPECS.items()
)


def assert_valid(body, api: str, schema: str | dict) -> None:
    if isinstance(schema, str):
        schema = {"$ref": f"urn:confluence-{api}#/components/schemas/{schema}"}
    errors = list(Draft202012Validator(schema, registry=REGISTRY).iter_errors(body))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]


def response_schema(api: str, path: str) -> dict:
    """The 200 schema of a GET operation, as written in the spec (for inline MultiEntityResult shapes)."""
    schema = SPECS[api]["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    return json.loads(json.dumps(schema).replace('"#/components', f'"urn:confluence-{api}#/components'))


def walk(session, url, params=None) -> tuple[list[dict], int]:
    """Follow ``_links.next`` to the end; the items and the number of requests."""
    items, calls = [], 0
    while url:
        response = session.get(url, params=params)
        response.raise_for_status()
        body, params, calls = response.json(), None, calls + 1
        items += body["results"]
        next_link, base = body["_links"].get("next"), body["_links"].get("base", "")
        if next_link and next_link.startswith("/wiki/api/v2"):  # v2 links are relative to the host
            base = base.removesuffix("/wiki")
        url = base + next_link if next_link else None
    return items, calls


def cql_ids(fake, cql, session=None) -> list[str]:
    """Ids of the content a CQL search finds, in the order returned (one page of up to 100)."""
    response = (session or fake.session()).get(f"{fake.api_url}/content/search", params={"cql": cql, "limit": 100})
    assert response.status_code == 200, response.text
    return [c["id"] for c in response.json()["results"]]
