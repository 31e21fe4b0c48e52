"""The schema registry side of the contracts: one subject per topic value, BACKWARD_TRANSITIVE.

Each subject gets its schema file with every `$ref` inlined (a self-contained document: the
registry compares whole schemas, and consumers need no file resolution). The registered copy is
declared draft-07: Apicurio 3.0's JSON compatibility checker knows drafts up to 7 and answers
"could not determine version" for 2019-09/2020-12. Draft-07 has no `unevaluatedProperties`, the
keyword that closes an event schema over its `$ref`ed base, and a checker that skips it sees an
open content model, where adding any property is a breaking change. So each such model is
registered flattened: the base's and the event's properties and required fields in one object
with `additionalProperties: false`, the same records accepted, and adding an optional property
to a closed model is backward compatible. `schemas/` in the repository stays the 2020-12 source
of truth. Registration and the compatibility check go through the Confluent-compatible API,
which Apicurio serves at `/apis/ccompat/v7`, so a Confluent Schema Registry works the same.

A subject registered before the models were closed holds the open form, which the closed one
cannot pass BACKWARD_TRANSITIVE against, although every record in the topics was validated
closed. When the open version closes to exactly the schema being registered (same contract,
another spelling), `register` replaces the subject: the records carry no schema id, so no reader
depends on the old version's id.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from lambdapipe.contracts.registry import SchemaRegistry, default_registry
from lambdapipe.errors import Problem
from lambdapipe.settings import Settings

# consumers on a new schema must read every older record still in the topics
COMPATIBILITY = "BACKWARD_TRANSITIVE"
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
REGISTERED_DRAFT = "http://json-schema.org/draft-07/schema#"
OPEN_FORM_HINT = (
    "the subject holds event schemas in the open form an earlier lambdapipe registered: run"
    " `lambdapipe schemas register` with this release's schemas unchanged (it replaces that"
    " form), then evolve them"
)
_DROPPED = ("$defs", "$id", "$schema")
# what the layers of a closed model may hold (rules.py allows no more on an object schema)
_LAYER_KEYWORDS = frozenset(
    ("$schema", "$id", "title", "description", "type", "properties", "required")
) | {"unevaluatedProperties"}


def subjects(settings: Settings) -> dict[str, str]:
    """Subject name -> schema file, one per topic value (dimension rows: their CDC `after`)."""
    k = settings.kafka
    return {
        f"{k.events_topic}-value": "entities/user_event.json",
        f"{k.transactions_topic}-value": "entities/transaction.json",
        f"{k.cdc_topic_prefix}.public.users-value": "entities/user.json",
        f"{k.cdc_topic_prefix}.public.products-value": "entities/product.json",
    }


def inline(
    relpath: str, registry: SchemaRegistry | None = None, close: bool = True
) -> dict[str, Any]:
    """The registered copy of the schema at `relpath`: every `$ref` replaced by its target (no
    recursion exists), every model closed by `unevaluatedProperties` flattened (`closed`; with
    `close=False`, the open form that was registered before)."""
    registry = registry or default_registry()

    def walk(node: Any, base: str) -> Any:
        if isinstance(node, Mapping):
            if "$ref" in node:
                target, target_doc = registry.resolve(node["$ref"], base)
                resolved = walk(target, target_doc)
                siblings = {
                    k: walk(v, base) for k, v in node.items() if k != "$ref" and k not in _DROPPED
                }
                # a $ref beside other keywords is an allOf of both (draft 2020-12)
                return {"allOf": [resolved], **siblings} if siblings else resolved
            return {k: walk(v, base) for k, v in node.items() if k not in _DROPPED}
        if isinstance(node, list):
            return [walk(item, base) for item in node]
        return node

    document = walk(registry.document(relpath), relpath)
    document = closed(document) if close else document
    return {"$schema": REGISTERED_DRAFT, "type": "object", **document}


def closed(node: Any) -> Any:
    """`node` with each `allOf` of object schemas closed by `unevaluatedProperties: false` merged
    into one object with `additionalProperties: false` (the meaning draft-07 can say)."""
    if isinstance(node, list):
        return [closed(item) for item in node]
    if not isinstance(node, Mapping):
        return node
    node = {k: closed(v) for k, v in node.items()}
    if node.get("unevaluatedProperties") is not False or "allOf" not in node:
        return node
    layers = [*node["allOf"], {k: v for k, v in node.items() if k != "allOf"}]
    properties: dict[str, Any] = {}
    required: list[str] = []
    for layer in layers:
        unknown = set(layer) - _LAYER_KEYWORDS
        if unknown:
            raise Problem(
                f"cannot register {node.get('title')!r} as one closed object: {sorted(unknown)}",
                hint="close an event with `unevaluatedProperties` over plain-property layers",
            )
        for name, schema in layer.get("properties", {}).items():
            properties[name] = _both(properties[name], schema) if name in properties else schema
        required += [name for name in layer.get("required", []) if name not in required]
    described = {k: node[k] for k in ("title", "description") if k in node}
    return {
        **described,
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _both(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """A property schema that holds where both hold (one object when no keyword clashes)."""
    clash = any(k in first and first[k] != v for k, v in second.items())
    return {"allOf": [first, second]} if clash else {**first, **second}


@dataclass(frozen=True)
class SubjectCheck:
    subject: str
    registered: bool
    compatible: bool
    messages: list[str]


class RegistryClient:
    """The Confluent-compatible schema registry API (Apicurio's ccompat, or Confluent's)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def _call(self, method: str, path: str, body: object | None = None) -> httpx.Response:
        try:
            return httpx.request(
                method,
                f"{self.base_url}{path}",
                content=None if body is None else json.dumps(body),
                headers={"Content-Type": CONTENT_TYPE, "Accept": "application/json"},
                timeout=30,
            )
        except httpx.HTTPError as exc:
            raise Problem(
                f"the schema registry does not answer at {self.base_url}: {exc}",
                hint="is the stack up (`lambdapipe up`)? is LAMBDAPIPE_REGISTRY__URL right?",
            ) from exc

    def register(self, subject: str, schema: Mapping[str, Any]) -> int:
        """Set the subject's compatibility level, then register (idempotent); the schema id."""
        response = self._add_version(subject, schema)
        if response.status_code == 409 and self._open_form_of(subject, schema):
            for query in ("", "?permanent=true"):  # Confluent's API deletes softly, then for good
                deleted = self._call("DELETE", f"/subjects/{subject}{query}")
                if deleted.status_code != 200:
                    raise Problem(f"replacing the open form of {subject} failed: {deleted.text}")
            response = self._add_version(subject, schema)
        if response.status_code == 409:
            raise Problem(
                f"{subject}: the registry refuses this schema as incompatible "
                f"({COMPATIBILITY}): {response.json().get('message', response.text)}",
                hint=OPEN_FORM_HINT
                if self._open_form(subject) is not None
                else "run `lambdapipe schemas check` for details; evolve compatibly",
            )
        if response.status_code != 200:
            raise Problem(f"registering {subject} failed: {response.text[:500]}")
        return int(response.json()["id"])

    def check(self, subject: str, schema: Mapping[str, Any]) -> SubjectCheck:
        """Is `schema` compatible with every registered version of `subject`?"""
        versions = self._call("GET", f"/subjects/{subject}/versions")
        if versions.status_code == 404:
            return SubjectCheck(subject, registered=False, compatible=True, messages=[])
        response = self._call(
            "POST",
            f"/compatibility/subjects/{subject}/versions/latest?verbose=true",
            {"schemaType": "JSON", "schema": json.dumps(schema)},
        )
        if response.status_code != 200:
            raise Problem(f"checking {subject} failed: {response.text[:500]}")
        result = response.json()
        compatible = bool(result.get("is_compatible"))
        messages = [str(m) for m in result.get("messages", [])]
        if not compatible and self._open_form_of(subject, schema):
            compatible, messages = True, ["open form registered: `schemas register` replaces it"]
        elif not compatible and self._open_form(subject) is not None:
            messages.append(OPEN_FORM_HINT)
        return SubjectCheck(subject, registered=True, compatible=compatible, messages=messages)

    def _add_version(self, subject: str, schema: Mapping[str, Any]) -> httpx.Response:
        config = self._call("PUT", f"/config/{subject}", {"compatibility": COMPATIBILITY})
        if config.status_code != 200:
            raise Problem(f"setting compatibility of {subject} failed: {config.text}")
        body = {"schemaType": "JSON", "schema": json.dumps(schema)}
        return self._call("POST", f"/subjects/{subject}/versions", body)

    def _open_form(self, subject: str) -> Any | None:
        """The latest registered version if it still has open (unevaluatedProperties) models."""
        latest = self._call("GET", f"/subjects/{subject}/versions/latest")
        if latest.status_code != 200 or "unevaluatedProperties" not in latest.json()["schema"]:
            return None
        return json.loads(latest.json()["schema"])

    def _open_form_of(self, subject: str, schema: Mapping[str, Any]) -> bool:
        """Is the latest version the open form of `schema` itself (the same contract)?"""
        registered = self._open_form(subject)
        return registered is not None and closed(registered) == schema


def register_all(settings: Settings) -> dict[str, int]:
    """Register every subject's working-tree schema; subject -> schema id."""
    client = RegistryClient(settings.registry.ccompat)
    return {subject: client.register(subject, inline(path)) for subject, path in _each(settings)}


def check_all(settings: Settings) -> list[SubjectCheck]:
    """Check every subject's working-tree schema against what is registered."""
    client = RegistryClient(settings.registry.ccompat)
    return [client.check(subject, inline(path)) for subject, path in _each(settings)]


def _each(settings: Settings) -> list[tuple[str, str]]:
    return list(subjects(settings).items())
