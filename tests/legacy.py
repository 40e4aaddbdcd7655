"""The retired models, re-declared as an operator whose upstream still serves them would declare them.

Many tests of generic behaviour (fan-out on dall-e-3, url responses on dall-e-2, the job runner on sora-2) were
written against models their owners have since retired. The shipped specs refuse those models (410
`model_retired`); this spec root, built from the shipped files at import, marks every route of each retired model
`lifecycle: {status: active}` — the documented way for an operator to say "my upstream still serves it"
(docs/SPEC.md, `routes[].lifecycle`). `tests.servers.GatewayThread` adds it to the default roots; tests of the
lifecycle itself pass the shipped root alone (`catalog.shipped_root()`).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import yaml

SHIPPED_MODELS = Path(__file__).resolve().parent.parent / "models.d"
NOTE = "test fixture: the simulators still speak this retired model"


_ROOT: list[Path] = []


def root() -> Path:
    """The root, built once per test process."""
    if not _ROOT:
        _ROOT.append(build())
    return _ROOT[0]


def build() -> Path:
    """A spec root (a directory of model files) holding the served copies; removed at exit."""
    root = Path(tempfile.mkdtemp(prefix="mediagate-legacy-specs-"))
    atexit.register(shutil.rmtree, root, True)
    for path in sorted(SHIPPED_MODELS.glob("*.yaml")):
        spec = yaml.safe_load(path.read_text())
        if (spec.get("lifecycle") or {}).get("status") != "retired":
            continue
        # the catalog as it was before the retirement: the owner's routes, served; a route added since because its
        # upstream still serves the model (its own lifecycle) is left out, so fallbacks stay what the tests expect
        spec["routes"] = [{**r, "lifecycle": {"status": "active", "note": NOTE}} for r in spec["routes"] if "lifecycle" not in r]
        (root / path.name).write_text(yaml.safe_dump(spec, sort_keys=False))
    return root
