"""The schema registry side of the contracts: one subject per topic value, BACKWARD_TRANSITIVE.

Each subject gets its schema file with every `$ref` inlined (a self-contained document: the
registry compares whole schemas, and consumers need no file resolution). The registered copy is
declared draft-07: Apicurio 3.0's JSON compatibility checker knows drafts up to 7 and answers
"could not determine version" for 2019-09/2020-12. Every keyword we use means the same in
draft-07 except `unevaluatedProperties`, which the registry therefore does not judge (the
contracts' own tests do); `schemas/` in the repository stays the 2020-12 source of truth.
Registration and the compatibility check go through the Confluent-compatible API, which Apicurio
serves at `/apis/ccompat/v7`, so a Confluent Schema Registry works the same.
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


def subjects(settings: Settings) -> dict[str, str]:
    """Subject name -> schema file, one per topic value (dimension rows: their CDC `after`)."""
    k = settings.kafka
    return {
        f"{k.events_topic}-value": "entities/user_event.json",
        f"{k.transactions_topic}-value": "entities/transaction.json",
        f"{k.cdc_topic_prefix}.public.users-value": "entities/user.json",
        f"{k.cdc_topic_prefix}.public.products-value": "entities/product.json",
    }


def inline(relpath: str, registry: SchemaRegistry | None = None) -> dict[str, Any]:
    """The schema at `relpath` with every `$ref` replaced by its target (no recursion exists)."""
    registry = registry or default_registry()

    def walk(node: Any, base: str) -> Any:
        if isinstance(node, Mapping):
            if "$ref" in node:
                target, target_doc = registry.resolve(node["$ref"], base)
                resolved = walk(target, target_doc)
                siblings = {k: walk(v, base) for k, v in node.items() if k != "$ref"}
                # a $ref beside other keywords is an allOf of both (draft 2020-12)
                return {"allOf": [resolved], **siblings} if siblings else resolved
            return {
                k: walk(v, base) for k, v in node.items() if k not in ("$defs", "$id", "$schema")
            }
        if isinstance(node, list):
            return [walk(item, base) for item in node]
        return node

    document = dict(walk(registry.document(relpath), relpath))
    return {"$schema": REGISTERED_DRAFT, "type": "object", **document}


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
        config = self._call("PUT", f"/config/{subject}", {"compatibility": COMPATIBILITY})
        if config.status_code != 200:
            raise Problem(f"setting compatibility of {subject} failed: {config.text}")
        body = {"schemaType": "JSON", "schema": json.dumps(schema)}
        response = self._call("POST", f"/subjects/{subject}/versions", body)
        if response.status_code == 409:
            raise Problem(
                f"{subject}: the registry refuses this schema as incompatible "
                f"({COMPATIBILITY}): {response.json().get('message', response.text)}",
                hint="run `lambdapipe schemas check` for details; evolve compatibly",
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
        return SubjectCheck(
            subject,
            registered=True,
            compatible=bool(result.get("is_compatible")),
            messages=[str(m) for m in result.get("messages", [])],
        )


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
