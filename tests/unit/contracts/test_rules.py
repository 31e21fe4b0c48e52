"""The schema compiler: where schemas are found, and what it refuses to compile."""

import shutil
from pathlib import Path

import orjson
import pytest

from lambdapipe.contracts.reasons import Reason
from lambdapipe.contracts.registry import SCHEMAS_DIR_ENV, SchemaRegistry, schemas_dir
from lambdapipe.contracts.rules import SchemaCompileError, compile_entity, compile_events


def _copy_schemas(tmp_path: Path) -> Path:
    root = tmp_path / "schemas"
    shutil.copytree(schemas_dir(), root)
    return root


def test_schemas_dir_defaults_to_the_repository() -> None:
    assert (schemas_dir() / "common.json").is_file()


def test_schemas_dir_env_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(SCHEMAS_DIR_ENV, str(tmp_path))
    assert schemas_dir() == tmp_path


def test_event_rules_merge_base_and_type_fields() -> None:
    purchase = compile_events(SchemaRegistry(schemas_dir()))["purchase"]
    assert purchase.closed
    assert purchase.required[:3] == ("event_id", "user_id", "session_id")
    assert {"amount", "transaction_id", "page_url"} <= purchase.field_names
    assert purchase.field("event_type").enum == ("purchase",)
    assert purchase.field("amount").reason is Reason.BAD_MONEY
    assert purchase.field("referrer").nullable


def _edit(root: Path, relpath: str, change: dict[str, object]) -> None:
    path = root / relpath
    schema = orjson.loads(path.read_bytes())
    schema.update(change)
    path.write_bytes(orjson.dumps(schema))


def test_unsupported_object_keyword_fails(tmp_path: Path) -> None:
    root = _copy_schemas(tmp_path)
    _edit(root, "events/search.json", {"minProperties": 3})
    with pytest.raises(SchemaCompileError, match="minProperties"):
        compile_events(SchemaRegistry(root))


def test_unsupported_field_keyword_fails(tmp_path: Path) -> None:
    root = _copy_schemas(tmp_path)
    schema = orjson.loads((root / "entities/product.json").read_bytes())
    schema["properties"]["name"] = {"type": "string", "multipleOf": 2}
    (root / "entities/product.json").write_bytes(orjson.dumps(schema))
    with pytest.raises(SchemaCompileError, match="multipleOf"):
        compile_entity(SchemaRegistry(root), "product")


def test_a_new_optional_field_reaches_the_rules(tmp_path: Path) -> None:
    root = _copy_schemas(tmp_path)
    schema = orjson.loads((root / "events/login.json").read_bytes())
    schema["properties"]["method"] = {"type": "string", "enum": ["password", "sso"]}
    (root / "events/login.json").write_bytes(orjson.dumps(schema))
    login = compile_events(SchemaRegistry(root))["login"]
    assert login.field("method").enum == ("password", "sso")
    assert "method" not in login.required
