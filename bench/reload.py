"""Hot-reload latency: the time from the poll that sees a one-file spec edit to the new catalog.

Builds a temporary spec root holding the shipped specs plus generated model files (so 50+ files), then
times what `reload.watch` does after a poll finds a change (fingerprint, load with the reload cache)
for a model edit and for a provider edit (which recompiles the models routing to that provider), against
a full load (no cache), and the YAML parse alone with the pure-Python and libyaml loaders.

    .venv/bin/python bench/reload.py [--extra 30] [--rounds 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import yaml

from mediagate import catalog, reload

TARGET_MS = 300.0   # a one-file edit served within this long of the poll that sees it


def spec_root(dest: Path, extra: int) -> Path:
    """The shipped specs copied under `dest`, plus `extra` generated models (copies of shipped ones)."""
    shutil.copytree(catalog.SHIPPED_MODELS, dest / "models.d")
    shutil.copytree(catalog.SHIPPED_PROVIDERS, dest / "providers.d")
    sources = sorted((dest / "models.d").glob("*.yaml"))
    for i in range(extra):
        src = sources[i % len(sources)]
        spec = yaml.safe_load(src.read_text())
        spec["id"] = f"{spec['id']}-bench{i}"
        spec.pop("aliases", None)
        (dest / "models.d" / f"{spec['id']}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return dest


def touch(path: Path, n: int) -> None:
    """A real edit: the spec's `name` changes, so its content (not only its mtime) is new."""
    lines = path.read_text().splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("name:"))
    lines[i] = f"name: bench edit {n}"
    path.write_text("\n".join(lines) + "\n")


def timed(fn: Callable[[], object], rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def fmt(ms: list[float]) -> str:
    return f"median {statistics.median(ms):7.1f} ms  max {max(ms):7.1f} ms"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--extra", type=int, default=30, help="generated model files added to the shipped ones")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = spec_root(Path(tmp), args.extra)
        roots = [root]
        files = sum(len(x) for x in catalog.spec_files(roots))
        texts = [f.read_text() for f in sorted(root.rglob("*.yaml"))]
        print(f"{files} spec files ({args.extra} generated), libyaml: {yaml.__with_libyaml__}")
        for name, loader in (("SafeLoader (pure Python)", yaml.SafeLoader), ("CSafeLoader (libyaml)", getattr(yaml, "CSafeLoader", None))):
            if loader is not None:
                print(f"  parse all, {name:26} {fmt(timed(lambda: [yaml.load(t, Loader=loader) for t in texts], args.rounds))}")
        print(f"  full load, no cache                  {fmt(timed(lambda: catalog.load(roots), args.rounds))}")
        cache = catalog.LoadCache()
        catalog.load(roots, cache=cache)
        model_file = root / "models.d" / "gpt-image-1.yaml"
        provider_file = root / "providers.d" / "openai.yaml"
        dependents = sum(1 for m in catalog.load(roots).models.values() if any(r.provider.id == "openai" for r in m.routes))
        for label, path in (("model edit", model_file), (f"provider edit ({dependents} models)", provider_file)):
            ms = []
            for n in range(args.rounds):
                touch(path, n)
                t = time.perf_counter()
                reload.fingerprint(roots)          # what the poll does
                catalog.load(roots, cache=cache)   # what the reload then does
                ms.append((time.perf_counter() - t) * 1000)
            verdict = "ok" if max(ms) <= TARGET_MS else f"OVER the {TARGET_MS:g} ms target"
            print(f"  reload after a {label:26} {fmt(ms)}  {verdict}")


if __name__ == "__main__":
    main()
