"""Load, check and compile every spec into the catalog the gateway serves.

Fail fast: each problem is reported as `file: $.json.path: message`, all of them at once, and a catalog
with any problem is never served. Compilation happens here once (templates, paths, request schemas,
shape tables), so the request path only evaluates.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import importlib.resources
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import jsonschema
import yaml

from mediagate import context, normalize, speccheck, suggest  # noqa: F401  (normalize registers the operations)
from mediagate.canonical import Canonical
from mediagate.errors import model_not_found
from mediagate.inputs import DEFAULT_INPUT_IMAGES, InputImage
from mediagate.operations import apply_all, compile_keywords
from mediagate.paths import PathError
from mediagate.provider import Operation, Provider, ProviderSpecError, compile_provider
from mediagate.request_schema import RequestValidator, build
from mediagate.shape import ShapeSpec
from mediagate.templates import Renderer, TemplateError, compile_value

log = logging.getLogger("mediagate")
PRICING_FACTS = frozenset({"resolution", "size", "pixels", "aspect_ratio", "thinking", "output_format"})
MAX_SPEC_FILE_BYTES = 1024 * 1024
MAX_NAME_ECHO_CHARS = 100       # an unknown model name is quoted back at most this long


class SpecErrors(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class Route:
    provider: Provider
    upstream_model: str
    priority: int
    weight: float
    values: dict[str, Any]
    native_n: int
    pricing: dict[str, Any] | None = None
    op_names: dict[str, str] = field(default_factory=dict)     # model operation -> provider operation
    bodies: dict[str, Renderer] = field(default_factory=dict)  # provider operation -> route-merged json template
    op_models: dict[str, str] = field(default_factory=dict)    # model operation -> upstream model, where it differs
    output: dict[str, Any] | None = None                       # this route's own, narrower `output` (formats, compression)
    prompt_chars: int | None = None                            # the longest prompt this route takes (limits.prompt_chars)
    lifecycle: dict[str, Any] | None = None                    # the model's standing at this route's provider, where it differs

    def model_for(self, model_operation: str) -> str:
        return self.op_models.get(model_operation, self.upstream_model)

    def operation(self, model_operation: str) -> Operation:
        """The provider operation serving `model_operation`, with this route's body merged in."""
        name = self.op_names.get(model_operation, model_operation)
        op = self.provider.operations[name]
        body = self.bodies.get(name)
        return dataclasses.replace(op, json=body) if body is not None else op


@dataclass
class Model:
    id: str
    file: str
    spec: dict[str, Any]
    keywords: dict[str, Any]
    validators: dict[str, RequestValidator]
    routes: list[Route]
    aliases: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return str(self.spec["kind"])

    def schemas(self) -> dict[str, Any]:
        return {op: v.schema for op, v in self.validators.items()}

    def canonical(self, body: Mapping[str, Any], operation: str = "generate", **inputs: Any) -> Canonical:
        """Fold the operations over `body`; `inputs` seeds edit inputs (images, mask, implicit_size)."""
        return apply_all(self.keywords, Canonical(model_id=self.id, operation=operation, body=body, **inputs))

    @property
    def fallback_after_send(self) -> bool:
        """The operator accepts possible double billing for availability (model spec `fallback_after_send`)."""
        return bool(self.spec.get("fallback_after_send", False))

    @property
    def input_image_limit(self) -> int:
        return int(self.spec.get("limits", {}).get("input_images", DEFAULT_INPUT_IMAGES))

    def to_openai(self, created: int) -> dict[str, Any]:
        return {"id": self.id, "object": "model", "created": created, "owned_by": self.spec.get("owned_by", "mediagate"),
                "name": self.spec.get("name", self.id), "kind": self.kind, "operations": list(self.spec["operations"]),
                "aliases": list(self.aliases), "providers": sorted({r.provider.id for r in self.routes})}


@dataclass
class Catalog:
    models: dict[str, Model]
    providers: dict[str, Provider]
    names: dict[str, Model]
    files: list[str]

    def resolve(self, name: Any) -> tuple[Model, str | None]:
        """`id`, an alias, or `provider/model` (forces that provider); 404 otherwise."""
        if not isinstance(name, str) or not name:
            raise model_not_found(str(name)[:MAX_NAME_ECHO_CHARS])
        if name in self.names:
            return self.names[name], None
        prefix, _, rest = name.partition("/")
        if rest and prefix in self.providers and rest in self.names:
            model = self.names[rest]
            if any(r.provider.id == prefix for r in model.routes):
                return model, prefix
        raise model_not_found(name[:MAX_NAME_ECHO_CHARS], suggest.nearest_models(rest or name, self.models))


# ------------------------------------------------------------------ files

_YamlLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml parses ~8x faster; pure Python if missing


class _UniqueKeyLoader(_YamlLoader):  # type: ignore[misc, valid-type]
    """A YAML loader that refuses duplicate keys instead of silently keeping the last."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return yaml.constructor.SafeConstructor.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _shipped(kind: str, checkout_dir: str) -> Path:
    """A directory of the specs and schemas shipped with the package: package data in an installed wheel
    (`mediagate/specs/<kind>`), the repository's own directory in a source checkout."""
    packaged = importlib.resources.files("mediagate").joinpath("specs", kind)
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / checkout_dir


SHIPPED_MODELS = _shipped("models", "models.d")
SHIPPED_PROVIDERS = _shipped("providers", "providers.d")
SCHEMA_DIR = _shipped("schemas", "schemas")


def shipped_root() -> list[Path]:
    """The shipped specs as one spec root (its models and providers directories)."""
    return [SHIPPED_MODELS, SHIPPED_PROVIDERS]


def default_spec_dirs(extra: Iterable[Path] = (), env: Mapping[str, str] | None = None) -> list[Path | list[Path]]:
    """The roots a serving gateway loads, in override order: the shipped specs (unless
    MEDIAGATE_SHIPPED_SPECS=off), then MEDIAGATE_SPEC_DIRS, then `extra` (--specs); a later root's model or
    provider replaces an earlier one with the same id."""
    env = os.environ if env is None else env
    roots: list[Path | list[Path]] = []
    if env.get("MEDIAGATE_SHIPPED_SPECS", "on").lower() not in ("off", "0", "false", "no"):
        roots.append(shipped_root())
    roots += [Path(p) for p in env.get("MEDIAGATE_SPEC_DIRS", "").split(os.pathsep) if p]
    roots += [Path(p) for p in extra]
    return roots


def _root_files(p: Path | list[Path]) -> tuple[list[Path], list[Path]]:
    """Model and provider files under one root: a directory holding models.d/ and providers.d/, one of them,
    a file, or a list of those taken together."""
    models: list[Path] = []
    providers: list[Path] = []
    if isinstance(p, list):
        for q in p:
            m, pr = _root_files(q)
            models += m
            providers += pr
        return models, providers
    p = Path(p)
    if p.is_file():
        (providers if p.parent.name in ("providers.d", "providers") else models).append(p)
    elif (p / "models.d").is_dir() or (p / "providers.d").is_dir():
        models += sorted((p / "models.d").glob("*.y*ml")) if (p / "models.d").is_dir() else []
        providers += sorted((p / "providers.d").glob("*.y*ml")) if (p / "providers.d").is_dir() else []
    elif p.name == "providers.d" or p == SHIPPED_PROVIDERS:
        providers += sorted(p.glob("*.y*ml"))
    elif p.is_dir():
        models += sorted(p.glob("*.y*ml"))
    return models, providers


def spec_files(paths: Iterable[Path | list[Path]]) -> tuple[list[Path], list[Path]]:
    """Every model and provider file under the roots, in root order."""
    models: list[Path] = []
    providers: list[Path] = []
    for root in paths:
        m, p = _root_files(root)
        models += m
        providers += p
    return models, providers


@functools.lru_cache(maxsize=None)
def _validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads((SCHEMA_DIR / name).read_text()))


FileKey = tuple[int, int]   # (mtime_ns, size): a file whose key is unchanged is not parsed again


@dataclass
class LoadCache:
    """What earlier loads parsed and compiled, so a reload redoes only changed files and their dependents:
    a changed provider recompiles the models routing to it, a changed model only itself. Entries are keyed
    by path + mtime_ns + size (and, for compiled results, by the keys of everything they depend on), so a
    cached load gives the same catalog as a full one."""

    files: dict[str, tuple[FileKey, Any, list[str]]] = field(default_factory=dict)          # path -> parsed
    models_valid: dict[str, tuple[FileKey, Any, list[str]]] = field(default_factory=dict)   # path -> schema-checked
    providers: dict[str, tuple[Any, Provider | None, list[str]]] = field(default_factory=dict)
    models: dict[str, tuple[Any, Model | None, list[str]]] = field(default_factory=dict)

    def prune(self, seen: set[str]) -> None:
        """Forget files no longer loaded (deleted, or a root left out)."""
        for table in (self.files, self.models_valid, self.models):
            for k in [k for k in table if k not in seen]:
                del table[k]


def _key(path: Path) -> FileKey | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def _parse(path: Path, problems: list[str], cache: LoadCache | None = None) -> Any:
    name = str(path)
    key = _key(path)
    hit = cache.files.get(name) if cache is not None else None
    if hit is not None and key is not None and hit[0] == key:
        problems.extend(hit[2])
        return hit[1]
    found: list[str] = []
    data = _parse_file(path, found)
    if cache is not None and key is not None:
        cache.files[name] = (key, data, found)
    problems.extend(found)
    return data


def _parse_file(path: Path, problems: list[str]) -> Any:
    name = str(path)
    if path.stat().st_size > MAX_SPEC_FILE_BYTES:
        problems.append(f"{name}: $: file is larger than {MAX_SPEC_FILE_BYTES} bytes")
        return None
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        problems.append(f"{name}: $: not valid YAML: {str(exc).splitlines()[0] if str(exc) else exc}")
        return None


def _read(path: Path, validator: jsonschema.Draft202012Validator, problems: list[str],
          cache: LoadCache | None = None) -> dict[str, Any] | None:
    key = _key(path)
    hit = cache.models_valid.get(str(path)) if cache is not None else None
    if hit is not None and key is not None and hit[0] == key:
        problems.extend(hit[2])
        return hit[1]
    found: list[str] = []
    data = _parse(path, found, cache)
    valid = None if data is None else _validated(path, data, validator, found)
    if cache is not None and key is not None:
        cache.models_valid[str(path)] = (key, valid, found)
    problems.extend(found)
    return valid


def _validated(path: Path, data: Any, validator: jsonschema.Draft202012Validator, problems: list[str]) -> dict[str, Any] | None:
    name = str(path)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    for err in errors:
        problems.append(f"{name}: {err.json_path}: {_schema_message(err)}")
    return None if errors else data


def _schema_message(err: jsonschema.ValidationError) -> str:
    if err.validator == "additionalProperties":
        return f"unknown key: {err.message.split('(')[-1].rstrip(')')}"
    if err.validator == "oneOf" and err.context:
        return min(err.context, key=lambda e: len(e.path)).message
    return err.message


# ------------------------------------------------------------------ compile

def load(paths: Iterable[Path | list[Path]] | None = None, env: Mapping[str, str] | None = None,
         cache: LoadCache | None = None) -> Catalog:
    """The catalog for these spec roots (default: `default_spec_dirs()`), or SpecErrors listing every problem.

    Ids are unique within a root; a later root's model or provider with an id an earlier root used
    replaces it, with one log line per override. With a `cache` (hot reload), unchanged files and what
    depends only on them are reused from the previous load."""
    env = os.environ if env is None else env
    roots = list(paths) if paths is not None else default_spec_dirs(env=env)
    per_root = [_root_files(r) for r in roots]
    model_files = [f for m, _ in per_root for f in m]
    problems: list[str] = []
    if not model_files:
        problems.append("models.d: $: no model files found")
    mv, pv = _validator("model.schema.json"), _validator("provider.schema.json")
    env_key = frozenset(env.items())

    raw: dict[str, tuple[Path, dict[str, Any]]] = {}
    raw_root: dict[str, int] = {}
    for root_index, (_, files) in enumerate(per_root):
        for path in files:
            spec = _parse(path, problems, cache)
            if spec is None:
                continue
            if not isinstance(spec, dict) or not isinstance(spec.get("id"), str):
                problems.append(f"{path}: $: a provider spec is a mapping with a string id")
                continue
            pid = spec["id"]
            if pid in raw and raw_root[pid] == root_index:
                problems.append(f"{path}: $.id: provider id {pid!r} is used by both {raw[pid][0]} and {path}")
                continue
            if pid in raw:
                log.warning("spec override: provider %r from %s replaces %s", pid, path, raw[pid][0])
            raw[pid] = (path, spec)
            raw_root[pid] = root_index
    providers: dict[str, Provider] = {}
    provider_keys: dict[str, Any] = {}
    for pid, (path, spec) in raw.items():
        key = _provider_key(pid, raw, env_key)
        hit = cache.providers.get(pid) if cache is not None and key is not None else None
        if hit is not None and hit[0] == key:
            compiled, found = hit[1], hit[2]
        else:
            found = []
            compiled = _compile_provider(pid, path, raw, pv, env, found)
            if cache is not None and key is not None:
                cache.providers[pid] = (key, compiled, found)
        problems.extend(found)
        if compiled is not None:
            providers[pid] = compiled
            provider_keys[pid] = key
    broken = set(raw) - set(providers)

    specs: dict[str, tuple[Path, dict[str, Any]]] = {}
    spec_root: dict[str, int] = {}
    for root_index, (files, _) in enumerate(per_root):
        for path in files:
            spec = _read(path, mv, problems, cache)
            if spec is None:
                continue
            mid = spec["id"]
            if mid in specs and spec_root[mid] == root_index:
                problems.append(f"{path}: $.id: {mid!r} is used by both {specs[mid][0]} and {path}")
                continue
            if mid in specs:
                log.warning("spec override: model %r from %s replaces %s", mid, path, specs[mid][0])
            specs[mid] = (path, spec)
            spec_root[mid] = root_index
    models: dict[str, Model] = {}
    names: dict[str, Model] = {}
    held_back: dict[str, list[str]] = {}
    for path, spec in specs.values():
        blocked = sorted({r["provider"] for r in spec["routes"]} & broken)
        if blocked:  # its provider's own errors are reported; one line names the models waiting on it
            for pid in blocked:
                held_back.setdefault(pid, []).append(spec["id"])
            continue
        model = _cached_model(path, spec, providers, provider_keys, problems, cache)
        if model is None:
            continue
        clash = [n for n in [model.id, *model.aliases] if n in names]
        for n in clash:
            other = names[n]
            roles = f"{other.file} ({'$.id' if n == other.id else '$.aliases'}) and {path} ({'$.id' if n == model.id else '$.aliases'})"
            problems.append(f"{path}: $.{'id' if n == model.id else 'aliases'}: {n!r} is used by both {roles}")
        if clash:
            continue
        models[model.id] = model
        for n in [model.id, *model.aliases]:
            names[n] = model
    for model in models.values():  # a successor named by a lifecycle must be one a caller can switch to
        for where, life in [("$.lifecycle", model.spec.get("lifecycle"))] + [
                (f"$.routes[{i}].lifecycle", r.get("lifecycle")) for i, r in enumerate(model.spec["routes"])]:
            successor = (life or {}).get("replacement")
            if successor is not None and successor not in names:
                problems.append(f"{model.file}: {where}.replacement: no model or alias {successor!r} in models.d")
    for pid, ids in held_back.items():
        problems.append(f"{raw[pid][0]}: $: {len(ids)} model{'s' if len(ids) > 1 else ''} not loaded because this "
                        f"provider has errors: {', '.join(sorted(ids))}")
    if cache is not None:
        cache.prune({str(f) for m, p in per_root for f in [*m, *p]})
        for pid in [k for k in cache.providers if k not in raw]:
            del cache.providers[pid]
    if problems:
        raise SpecErrors(problems)
    used = [str(p) for p, _ in specs.values()] + [str(p) for p, _ in raw.values()]
    return Catalog(models, providers, names, used)


def _provider_key(pid: str, raw: dict[str, tuple[Path, dict[str, Any]]], env_key: frozenset[Any]) -> Any:
    """What a compiled provider depends on: its files along the `extends` chain and the environment;
    None (never cached) when the chain is broken."""
    chain: list[str] = []
    cur: str | None = pid
    while cur is not None:
        if cur not in raw or cur in chain:
            return None
        chain.append(cur)
        ext = raw[cur][1].get("extends")
        cur = ext if isinstance(ext, str) else None
    return tuple((str(raw[c][0]), _key(raw[c][0])) for c in chain), env_key


def _compile_provider(pid: str, path: Path, raw: dict[str, tuple[Path, dict[str, Any]]],
                      pv: jsonschema.Draft202012Validator, env: Mapping[str, str], problems: list[str]) -> Provider | None:
    merged = _extended(pid, raw, f"{path}", problems)
    if merged is None or _validated(path, merged, pv, problems) is None:
        return None
    missing = [k for k in ("base_url", "operations") if k not in merged]
    if missing:
        problems.append(f"{path}: $: {missing[0]!r} is a required property (here or in the provider it extends)")
        return None
    found = speccheck.provider(merged)
    if found:
        problems.extend(f"{path}: {p}: {m}" for p, m in found)
        return None
    try:
        return compile_provider(merged, str(path), env)
    except (TemplateError, PathError, ProviderSpecError) as exc:
        problems.append(f"{path}: {exc}")
    except Exception as exc:  # a spec the checks missed must still be reported by file, never crash the loader
        problems.append(f"{path}: $: cannot be compiled: {type(exc).__name__}: {exc}")
    return None


def _cached_model(path: Path, spec: dict[str, Any], providers: dict[str, Provider], provider_keys: dict[str, Any],
                  problems: list[str], cache: LoadCache | None) -> Model | None:
    """The compiled model, reused while neither its file nor any provider it routes to changed."""
    deps = tuple(sorted((pid, provider_keys.get(pid)) for pid in {r["provider"] for r in spec["routes"]}))
    key = (_key(path), deps)
    hit = cache.models.get(str(path)) if cache is not None else None
    if hit is not None and hit[0] == key and None not in (key[0], *[k for _, k in deps]):
        problems.extend(hit[2])
        return hit[1]
    found: list[str] = []
    bodies = [(f"$.routes[{i}].body", r["body"]) for i, r in enumerate(spec["routes"]) if "body" in r]
    lang = [f"{path}: {p}: {m}" for where, body in bodies for p, m in speccheck.route_body(body, where)]
    model = None
    if lang:
        found += lang
    else:
        try:
            model = _compile_model(spec, str(path), providers, found)
        except Exception as exc:  # reported by file, never a crash
            found.append(f"{path}: $: cannot be compiled: {type(exc).__name__}: {exc}")
        model = None if found else model
    if cache is not None:
        cache.models[str(path)] = (key, model, found)
    problems.extend(found)
    return model


def _op_mapping(route: dict[str, Any], op: str) -> tuple[str, str | None]:
    """(provider operation, upstream model or None) serving model operation `op` on this route."""
    m = route.get("operations", {}).get(op, op)
    if isinstance(m, str):
        return m, None
    return m.get("operation", op), m.get("upstream_model")


def _deep_merge(base: Any, over: Any) -> Any:
    """`over` on top of `base`, objects merged key by key; a null in `over` removes the key."""
    if isinstance(base, dict) and isinstance(over, dict):
        merged = {**base, **{k: _deep_merge(base.get(k), v) for k, v in over.items()}}
        return {k: v for k, v in merged.items() if not (v is None and k in over)}
    return over


def _extended(pid: str, raw: dict[str, tuple[Path, dict[str, Any]]], file: str, problems: list[str]) -> dict[str, Any] | None:
    """The provider spec with its `extends` chain merged underneath it."""
    chain = [pid]
    spec = raw[pid][1]
    while "extends" in spec:
        base = spec["extends"]
        if base not in raw:
            problems.append(f"{file}: $.extends: no provider {base!r} in providers.d")
            return None
        if base in chain:
            problems.append(f"{file}: $.extends: cycle {' -> '.join(chain + [base])}")
            return None
        chain.append(base)
        spec = raw[base][1]
    merged: dict[str, Any] = {}
    for cid in reversed(chain):
        merged = _deep_merge(merged, {k: v for k, v in raw[cid][1].items() if k != "extends"})
    return merged


def _semantic_problems(spec: dict[str, Any], providers: dict[str, Provider]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for i, route in enumerate(spec["routes"]):
        prov = providers.get(route["provider"])
        if prov is None:
            out.append((f"$.routes[{i}].provider", f"no provider {route['provider']!r} in providers.d"))
            continue
        for op in spec["operations"]:
            name = _op_mapping(route, op)[0]
            if name not in prov.operations:
                out.append((f"$.routes[{i}].provider", f"provider {prov.id!r} has no {name!r} operation"))
            elif op != "chat" and "outputs" not in prov.spec["operations"][name]:
                out.append((f"$.routes[{i}].provider", f"provider {prov.id!r} operation {name!r} declares no outputs"))
    if "shape" in spec:
        out += [(f"$.shape{p}", m) for p, m in ShapeSpec.from_spec(spec["shape"]).problems()]
    thinking = spec.get("thinking")
    if thinking and "default" in thinking and thinking["default"] not in thinking["levels"]:
        out.append(("$.thinking.default", f"{thinking['default']!r} is not one of levels {thinking['levels']}"))
    lengths = spec.get("durations") or {}
    for tier, allowed in (lengths.get("by_resolution") or {}).items():
        if tier not in (spec.get("shape") or {}).get("resolutions", []):
            out.append((f"$.durations.by_resolution.{tier}", f"{tier!r} is not one of shape.resolutions"))
        stray = [a for a in allowed if a not in lengths.get("allowed", [])]
        if stray:
            out.append((f"$.durations.by_resolution.{tier}", f"{stray} not among durations.allowed {lengths.get('allowed')}"))
    output = spec.get("output")
    if output and "default_format" in output and output["default_format"] not in output["formats"]:
        out.append(("$.output.default_format", f"{output['default_format']!r} is not one of formats {output['formats']}"))
    model_out = output or {"formats": ["png"], "compression": False}
    for i, r in enumerate(spec.get("routes", [])):  # a route narrows the model's output, never widens it
        ro = r.get("output")
        if ro is None:
            continue
        wider = [f for f in ro["formats"] if f not in model_out["formats"]]
        if wider:
            out.append((f"$.routes[{i}].output.formats", f"{wider} not among the model's output formats {model_out['formats']}"))
        if "default_format" in ro and ro["default_format"] not in ro["formats"]:
            out.append((f"$.routes[{i}].output.default_format", f"{ro['default_format']!r} is not one of formats {ro['formats']}"))
        if ro.get("compression") and not model_out.get("compression"):
            out.append((f"$.routes[{i}].output.compression", "the model's output declares no native compression"))
    for name, p in spec.get("params", {}).items():
        if "enum" in p and "default" in p and p["default"] not in p["enum"]:
            out.append((f"$.params.{name}.default", f"{p['default']!r} is not one of enum {p['enum']}"))
    known = PRICING_FACTS | set(spec.get("params", {}))
    pricings = [("$.pricing", spec.get("pricing"))] + [(f"$.routes[{i}].pricing", r.get("pricing")) for i, r in enumerate(spec["routes"])]
    for where, pricing in pricings:
        for j, comp in enumerate((pricing or {}).get("components", [])):
            for key in comp.get("when", {}):
                if key not in known:
                    out.append((f"{where}.components[{j}].when.{key}", f"unknown condition; use one of {sorted(known)}"))
    for i, r in enumerate(spec["routes"]):
        prov = providers.get(r["provider"])
        if prov is not None and prov.token is not None:
            for key in ("from_secret", "unless_secret"):
                name = prov.spec["token"].get(key)
                if name and name not in prov.secrets:
                    out.append((f"$.routes[{i}].provider", f"{prov.file}: token.{key} names no secret {name!r}"))
    return out


def _compile_model(spec: dict[str, Any], file: str, providers: dict[str, Provider], problems: list[str]) -> Model | None:
    found = _semantic_problems(spec, providers)
    if found:
        problems.extend(f"{file}: {p}: {m}" for p, m in found)
        return None
    model_values = spec.get("values", {})
    native_n = spec.get("limits", {}).get("n", 1)
    routes = []
    for i, r in enumerate(spec["routes"]):
        prov = providers[r["provider"]]
        mapping = {op: _op_mapping(r, op) for op in spec["operations"]}
        op_names = {op: m[0] for op, m in mapping.items()}
        op_models = {op: m[1] for op, m in mapping.items() if m[1]}
        bodies: dict[str, Renderer] = {}
        if "body" in r:
            for name in set(op_names.values()):
                request = prov.spec["operations"][name]["request"]
                key = "multipart" if "multipart" in request else "json"
                merged = _deep_merge(request.get(key, {}), r["body"])
                try:
                    bodies[name] = compile_value(merged, f"$.routes[{i}].body")
                except TemplateError as exc:
                    problems.append(f"{file}: {exc}")
                    return None
        routes.append(Route(prov, r["upstream_model"], r.get("priority", 0), float(r.get("weight", 1)),
                            {**model_values, **r.get("values", {})}, r.get("limits", {}).get("n", native_n),
                            r.get("pricing", spec.get("pricing")), op_names, bodies, op_models, r.get("output"),
                            r.get("limits", {}).get("prompt_chars"), r.get("lifecycle")))
    model = Model(id=spec["id"], file=file, spec=spec, keywords=compile_keywords(spec),
                  validators={op: RequestValidator(build(spec, op)) for op in spec["operations"]},
                  routes=routes, aliases=list(spec.get("aliases", [])))
    for problem in dry_render(model):
        problems.append(f"{file}: {problem}")
    return model


# a real 1x1 PNG, so templates that read pixels (a mask's edit_area_b64) render at load as they will per request
_SPEC_CHECK_IMAGE = InputImage(base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="),
                               "png", 64, 64)


def dry_render(model: Model) -> list[str]:
    """Render every route's request for the model's default request, so a template bug fails at load."""
    from mediagate.upstream import Target, render

    problems: list[str] = []
    for op in model.validators:
        body = {"model": model.id, "prompt": "spec check"}
        needs_image = bool(model.spec.get("inputs", {}).get("required"))   # an image-only model's default request
        try:
            req = model.canonical(body, op, **({"images": (_SPEC_CHECK_IMAGE,)} if needs_image else {}))
            if op == "edit":
                req = req.with_(images=(_SPEC_CHECK_IMAGE,), mask=_SPEC_CHECK_IMAGE)
        except Exception as exc:  # a spec that cannot even build its default request is broken
            problems.append(f"$: the default request does not normalize: {exc}")
            continue
        for i, route in enumerate(model.routes):
            operation = route.operation(op)
            target = Target("http://spec.check", {k: "x" for k in route.provider.secrets}, True)
            try:
                ctx = context.build(req, route, min(req.n, route.native_n))
                sent = render(route.provider, operation, ctx, target)
                if op == "edit":
                    problems += _mask_declared(route, operation, sent, ctx, target, i)
            except TemplateError as exc:
                problems.append(f"$.routes[{i}]: {route.provider.file} {exc}")
    return problems


def _mask_declared(route: Route, operation: Operation, sent: Any, ctx: dict[str, Any], target: Any, i: int) -> list[str]:
    """An edit operation's `mask: true` must match what its request does with a mask, both ways."""
    from mediagate.upstream import render

    reads = render(route.provider, operation, {**ctx, "mask": None}, target).json != sent.json
    if reads == operation.takes_mask:
        return []
    name = route.op_names.get("edit", "edit")
    if reads:
        return [f"$.routes[{i}]: {route.provider.file} $.operations.{name}: the request sends the mask; declare mask: true"]
    return [f"$.routes[{i}]: {route.provider.file} $.operations.{name}.mask: declared, but the request never sends the mask"]
