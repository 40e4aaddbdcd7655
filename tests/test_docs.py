"""The operator docs keep up with the code: every meta-schema key, every MEDIAGATE_* setting and every
engine module is documented. Each test fails with the list of what is missing."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parent.parent
SPEC_DOCS = [ROOT / "docs" / "SPEC.md", ROOT / "docs" / "SPEC-constructs.md"]   # the second may not exist yet
SCHEMAS = [ROOT / "schemas" / "model.schema.json", ROOT / "schemas" / "provider.schema.json"]
_CODE = re.compile(r"`([^`\n]+)`")
_WORD = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*")


def _property_keys(node: Any, where: str) -> Iterator[tuple[str, str]]:
    """(key, JSON path) for every key of every `properties` object, at any depth of a schema."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                for prop, sub in value.items():
                    yield prop, f"{where}.{prop}"
                    yield from _property_keys(sub, f"{where}.{prop}")
            else:
                yield from _property_keys(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _property_keys(value, f"{where}[{i}]")


def _backticked_words(paths: list[Path]) -> set[str]:
    """Every name written inside `code spans` (`outputs.items` counts for outputs and items)."""
    words: set[str] = set()
    for path in paths:
        if path.exists():
            for span in _CODE.findall(path.read_text(encoding="utf-8")):
                words.update(_WORD.findall(span))
    return words


def test_every_meta_schema_key_is_documented() -> None:
    documented = _backticked_words(SPEC_DOCS)
    missing = sorted({f"{key}  ({schema.name}: {where})"
                      for schema in SCHEMAS
                      for key, where in _property_keys(json.loads(schema.read_text()), "$")
                      if key not in documented})
    assert not missing, ("meta-schema keys not documented in docs/SPEC.md or docs/SPEC-constructs.md "
                         "(write each in `backticks`):\n  " + "\n  ".join(missing))


_ENV_LITERAL = re.compile(r"""["'](MEDIAGATE_[A-Z0-9_]+)["']""")


def test_every_setting_read_by_the_engine_is_documented() -> None:
    read = {name for path in (ROOT / "engine").rglob("*.py") for name in _ENV_LITERAL.findall(path.read_text())}
    assert read, "no MEDIAGATE_* settings found in engine/: the pattern is stale"
    docs = "\n".join(p.read_text(encoding="utf-8") for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])
    missing = sorted(name for name in read if not re.search(rf"\b{name}\b", docs))
    assert not missing, "settings read in engine/ but not in README.md or docs/*.md:\n  " + "\n  ".join(missing)


def test_every_engine_module_is_in_the_architecture() -> None:
    named = _backticked_words([ROOT / "docs" / "ARCHITECTURE.md"])
    modules = sorted(p.stem for p in (ROOT / "engine").glob("*.py") if p.stem != "__init__")
    missing = [m for m in modules if m not in named]
    assert not missing, "engine modules not named (in `backticks`) in docs/ARCHITECTURE.md:\n  " + "\n  ".join(missing)


def test_key_walk_finds_nested_keys() -> None:
    """The walk must reach $defs and nested objects, or the first test could pass while proving nothing."""
    keys = {k for schema in SCHEMAS for k, _ in _property_keys(json.loads(schema.read_text()), "$")}
    assert {"exclude_first", "retry_after", "done_when", "revised_prompt", "min_ratio", "match_size"} <= keys
