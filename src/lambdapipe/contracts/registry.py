"""Loads the JSON Schema files from the repository's `schemas/` directory and resolves `$ref`s."""

import functools
import os
import posixpath
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

SCHEMAS_DIR_ENV = "LAMBDAPIPE_SCHEMAS_DIR"

EVENT_TYPES: tuple[str, ...] = (
    "page_view",
    "product_view",
    "search",
    "add_to_cart",
    "remove_from_cart",
    "checkout_start",
    "purchase",
    "login",
    "logout",
)
ENTITIES: tuple[str, ...] = ("user", "product", "transaction", "user_event")

Schema = Mapping[str, Any]


def schemas_dir() -> Path:
    """Return the schema directory: `$LAMBDAPIPE_SCHEMAS_DIR`, else `schemas/` at the repo root."""
    override = os.environ.get(SCHEMAS_DIR_ENV)
    if override:
        return Path(override)
    # src/lambdapipe/contracts/registry.py -> repository root is three levels above the package.
    return Path(__file__).resolve().parents[3] / "schemas"


class SchemaRegistry:
    """The schema files of one directory, addressed by relative path (`events/search.json`)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._documents: dict[str, Schema] = {}

    def document(self, relpath: str) -> Schema:
        """Return the parsed schema file at `relpath` (POSIX, relative to the root)."""
        key = posixpath.normpath(relpath)
        if key not in self._documents:
            self._documents[key] = orjson.loads((self.root / key).read_bytes())
        return self._documents[key]

    def resolve(self, ref: str, base: str) -> tuple[Schema, str]:
        """Resolve `ref` found in document `base`; return the target and its document's path."""
        file_part, _, pointer = ref.partition("#")
        target_doc = posixpath.normpath(posixpath.join(posixpath.dirname(base), file_part))
        if not file_part:
            target_doc = base
        node: Any = self.document(target_doc)
        for token in filter(None, pointer.split("/")):
            node = node[token.replace("~1", "/").replace("~0", "~")]
        return node, target_doc

    def common_def(self, name: str) -> Schema:
        """Return one reusable definition of `common.json`."""
        defs: Mapping[str, Schema] = self.document("common.json")["$defs"]
        return defs[name]


@functools.cache
def default_registry() -> SchemaRegistry:
    """Return the registry of `schemas_dir()`, created once per process."""
    return SchemaRegistry(schemas_dir())
