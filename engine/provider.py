"""A provider spec compiled once: templates, output paths, block conditions and error rules.

Secrets are only ever names of environment variables in the spec; their values are read here, at load,
and exist only inside the rendered request headers.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from jmespath.parser import ParsedResult

from mediagate.paths import compile_path, field_names
from mediagate.templates import Renderer, TemplateError, compile_value

DEFAULT_TIMEOUT_S = 120.0
DEFAULT_MAX_CONNECTIONS = 100


@dataclass(frozen=True)
class BlockRule:
    when: ParsedResult
    message: Renderer | None


@dataclass(frozen=True)
class ErrorRule:
    statuses: frozenset[int] | None     # None: any non-success status; a 2xx listed also judges successful replies
    when: ParsedResult | None
    code: str
    retryable: bool | None               # None: the code's default
    message: ParsedResult | None
    param: ParsedResult | None
    retry_after: tuple[tuple[str, Any, str], ...]  # ("header", name, unit) | ("path", compiled, unit)
    params: dict[str, str] = field(default_factory=dict)
    retryable_header: str | None = None
    not_billed: bool | None = None       # None: the engine's default (only a 429 proves it)


@dataclass(frozen=True)
class SigV4Spec:
    """`auth.sigv4`: templates (context: `secrets`, `config`) rendered per call into `sigv4.Credentials`."""

    access_key_id: Renderer
    secret_access_key: Renderer
    region: Renderer
    service: Renderer
    session_token: Renderer | None = None
    content_sha256_header: bool = False
    path_encoded_once: bool = False


@dataclass(frozen=True)
class Endpoint:
    """`endpoints.NAME`: another base URL of the same provider (its own sandbox path), and how calls to it
    are signed when that differs (S3's `service: s3`)."""

    base_url: str
    sandbox_path: str | None
    sigv4: dict[str, Any]


@dataclass(frozen=True)
class UrlStep:
    url: ParsedResult | None          # absolute URL from the submit reply
    path: Renderer | None             # or a path under the base URL (context has `job`)
    method: str
    json: Renderer | None
    headers: dict[str, Renderer]
    binary: bool = False               # the reply is the output file itself
    query: dict[str, Renderer] = field(default_factory=dict)  # query parameters (context has job and last)
    endpoint: str | None = None        # `path` is under this named endpoint instead of the base URL


@dataclass(frozen=True)
class FailureRule:
    when: ParsedResult
    code: str
    retryable: bool | None
    message: ParsedResult | None


@dataclass(frozen=True)
class JobSpec:
    """A submit -> poll -> result protocol, as declared under an operation's `async`."""

    submit_headers: dict[str, Renderer]
    poll: UrlStep
    interval_s: float
    backoff: float
    max_interval_s: float
    deadline_s: float
    done_when: ParsedResult
    failed_when: tuple[FailureRule, ...]
    result: UrlStep | None
    cancel: UrlStep | None
    trusted_hosts: frozenset[str]
    progress: ParsedResult | None = None
    progress_scale: float = 1.0            # makes the provider's progress 0-100 (100 for a 0..1 fraction)
    reply_view: bool = False               # conditions read {body, headers, status} (operation `view: reply`)
    reply_skip: frozenset[str] = frozenset()  # top-level reply members dropped unread (operation `reply_skip`)


@dataclass(frozen=True)
class Operation:
    method: str
    path: Renderer
    headers: dict[str, Renderer]
    query: dict[str, Renderer]
    json: Renderer | None
    passthrough_into: tuple[str, ...] | None
    items: ParsedResult
    item: dict[str, ParsedResult]
    response: dict[str, ParsedResult]
    blocked: tuple[BlockRule, ...]
    on_empty: dict[str, Any] | None
    job: JobSpec | None = None
    multipart: bool = False                # `json` renders the fields of a multipart/form-data body
    takes_mask: bool = False               # the request sends the edit mask (declared with `mask: true`)
    idempotency_header: str | None = None  # the provider deduplicates requests carrying the same key here
    idempotency_field: str | None = None   # ... or carrying it in this top-level field of the JSON body
    file_types: tuple[str, ...] | None = None  # `outputs.body: file`: the reply body is the file, of these types
    reply_view: bool = False               # paths read {body, headers, status} instead of the body (`view: reply`)
    metadata: dict[str, ParsedResult] = field(default_factory=dict)  # reply fields surfaced as metadata.upstream
    reply_skip: frozenset[str] = frozenset()  # top-level members of its JSON replies dropped unread (`reply_skip`)

    @property
    def idempotent(self) -> bool:
        """The provider deduplicates by a client key (a header or a body field): a retry under it is safe."""
        return self.idempotency_header is not None or self.idempotency_field is not None


@dataclass
class Provider:
    id: str
    name: str
    file: str
    base_url: str
    secrets: dict[str, str | None]
    missing_secrets: list[str]           # environment variables to set before the provider is configured
    auth_headers: dict[str, Renderer]
    auth_query: dict[str, Renderer]
    sandbox_path: str | None
    sandbox_unless_env: list[str]
    timeout_s: float
    max_connections: int
    operations: dict[str, Operation]
    errors: tuple[ErrorRule, ...]
    config: dict[str, str] = field(default_factory=dict)
    output_hosts: tuple[str, ...] = ()
    token: dict[str, Renderer] | None = None      # an OAuth2 JWT-bearer grant that yields secrets.token
    sigv4: SigV4Spec | None = None                # every call signed with AWS Signature Version 4 when sent
    endpoints: dict[str, Endpoint] = field(default_factory=dict)   # other hosts its steps call (an S3 store)
    spec: dict[str, Any] = field(repr=False, default_factory=dict)

    def wants_sandbox(self, env: Mapping[str, str]) -> bool:
        """True when the environment lacks what a real call needs (keys, or an operator's base URL)."""
        if self.sandbox_path is None:
            return False
        if self.sandbox_unless_env:
            return any(not env.get(name) for name in self.sandbox_unless_env)
        refs = self.spec.get("secrets", {})
        return bool(_missing(self.spec, {n: env.get(r["env"]) or None for n, r in refs.items()}))


class ProviderSpecError(Exception):
    """A provider spec that is schema-valid but contradicts itself; `path` locates the problem."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


def secret_sets(spec: Mapping[str, Any]) -> list[list[str]]:
    """The sets of secrets that make a provider configured: `configured_when`, else every non-optional secret.
    A provider whose secrets are all optional must say (else it would count as configured with none)."""
    refs = spec.get("secrets", {})
    if "configured_when" in spec:
        for i, names in enumerate(spec["configured_when"]):
            for name in names:
                if name not in refs:
                    raise ProviderSpecError(f"$.configured_when[{i}]", f"no secret {name!r} in secrets")
        return [list(names) for names in spec["configured_when"]]
    if refs and all(r.get("optional") for r in refs.values()):
        raise ProviderSpecError("$.secrets", "every secret is optional: say which make the provider configured "
                                "with configured_when (e.g. [[access_token], [service_account]], or [[]] for none)")
    return [[n for n, r in refs.items() if not r.get("optional")]]


def _missing(spec: Mapping[str, Any], values: Mapping[str, str | None]) -> list[str]:
    """Environment variables still unset for the nearest satisfiable secret set; [] when configured."""
    refs = spec.get("secrets", {})
    gaps = [[refs[n]["env"] for n in names if not values.get(n)] for names in secret_sets(spec)]
    return [] if any(not g for g in gaps) else min(gaps, key=len)


def _statuses(value: Any) -> frozenset[int] | None:
    if value is None:
        return None
    if isinstance(value, int):
        return frozenset({value})
    if isinstance(value, str):  # "5xx"
        base = int(value[0]) * 100
        return frozenset(range(base, base + 100))
    return frozenset(value)


def compile_provider(spec: dict[str, Any], file: str, env: Mapping[str, str] | None = None) -> Provider:
    """Compile a schema-valid provider spec; template and path errors raise with their `$.` path."""
    env = os.environ if env is None else env
    config = {name: env.get(c.get("env", ""), "") or str(c.get("default", "")) for name, c in spec.get("config", {}).items()}
    base = spec["base_url"]
    base_url = base if isinstance(base, str) else (env.get(base.get("env", ""), "") or base["default"])
    if "{{" in base_url:
        base_url = str(compile_value(base_url, "$.base_url")({"config": config}))
    secrets = {name: env.get(ref["env"]) or None for name, ref in spec.get("secrets", {}).items()}
    missing = _missing(spec, secrets)
    auth = spec.get("auth", {})
    def hosts(value: Any, path: str) -> tuple[str, ...]:
        return host_list(value, path, config, env)

    operations = {name: _compile_operation(op, f"$.operations.{name}", hosts) for name, op in spec["operations"].items()}
    sigv4 = _compile_sigv4(auth["sigv4"]) if "sigv4" in auth else None
    endpoints = {name: _compile_endpoint(e, f"$.endpoints.{name}", config, env) for name, e in spec.get("endpoints", {}).items()}
    _check_signed(spec, sigv4, endpoints)
    errors = tuple(_compile_rule(rule, f"$.errors[{i}]") for i, rule in enumerate(spec.get("errors", [])))
    sandbox = spec.get("sandbox")
    return Provider(
        id=spec["id"], name=spec.get("name", spec["id"]), file=file, base_url=base_url.rstrip("/"),
        secrets=secrets, missing_secrets=missing,
        auth_headers={k: compile_value(v, f"$.auth.headers.{k}") for k, v in auth.get("headers", {}).items()},
        auth_query={k: compile_value(v, f"$.auth.query.{k}") for k, v in auth.get("query", {}).items()},
        sandbox_path=sandbox["path"] if sandbox else None,
        sandbox_unless_env=list(sandbox.get("unless_env", [])) if sandbox else [],
        timeout_s=float(spec.get("timeout_s", DEFAULT_TIMEOUT_S)),
        max_connections=int(spec.get("max_connections", DEFAULT_MAX_CONNECTIONS)),
        operations=operations, errors=errors, config=config, output_hosts=hosts(spec.get("output_hosts", []), "$.output_hosts"),
        token={k: compile_value(v, f"$.token.{k}") for k, v in spec["token"].items() if k != "claims"}
        | {"claims": compile_value(spec["token"]["claims"], "$.token.claims")} if "token" in spec else None,
        sigv4=sigv4, endpoints=endpoints,
        spec=spec,
    )


def _compile_sigv4(spec: dict[str, Any]) -> SigV4Spec:
    def t(key: str) -> Renderer:
        return compile_value(spec[key], f"$.auth.sigv4.{key}")
    return SigV4Spec(access_key_id=t("access_key_id"), secret_access_key=t("secret_access_key"), region=t("region"),
                     service=t("service"), session_token=t("session_token") if "session_token" in spec else None,
                     content_sha256_header=bool(spec.get("content_sha256_header", False)),
                     path_encoded_once=bool(spec.get("path_encoded_once", False)))


def _compile_endpoint(spec: dict[str, Any], path: str, config: Mapping[str, str], env: Mapping[str, str]) -> Endpoint:
    base = spec["base_url"]
    url = base if isinstance(base, str) else (env.get(base.get("env", ""), "") or base["default"])
    if "{{" in url:
        try:
            url = str(compile_value(url, f"{path}.base_url")({"config": config}))
        except TemplateError as exc:
            raise ProviderSpecError(f"{path}.base_url", f"does not render against config: {exc}") from None
    return Endpoint(base_url=url.rstrip("/"), sandbox_path=spec.get("sandbox_path"), sigv4=dict(spec.get("sigv4", {})))


def _check_signed(spec: Mapping[str, Any], sigv4: SigV4Spec | None, endpoints: Mapping[str, Endpoint]) -> None:
    """A SigV4 signature hashes the body as sent: a multipart body (its boundary chosen by the transport) is
    refused here rather than signed wrongly. Steps may only name declared endpoints."""
    for name, op in spec["operations"].items():
        if sigv4 is not None and "multipart" in op["request"]:
            raise ProviderSpecError(f"$.operations.{name}.request.multipart", "auth.sigv4 signs the body's SHA-256: "
                                    "a multipart body is not supported on a SigV4 provider; send json")
        for step in ("poll", "result", "cancel"):
            ref = op.get("async", {}).get(step, {}).get("endpoint")
            if ref is not None and ref not in endpoints:
                raise ProviderSpecError(f"$.operations.{name}.async.{step}.endpoint", f"no endpoint {ref!r} under endpoints")
            if ref is not None and "path" not in op["async"][step]:
                raise ProviderSpecError(f"$.operations.{name}.async.{step}.endpoint", "an endpoint step takes a path")
    for name, e in endpoints.items():
        if e.sigv4 and sigv4 is None:
            raise ProviderSpecError(f"$.endpoints.{name}.sigv4", "overrides auth.sigv4, which this provider does not declare")


def _split(text: str) -> list[str]:
    return [h.strip() for h in text.split(",") if h.strip()]


def host_list(value: Any, path: str, config: Mapping[str, str], env: Mapping[str, str]) -> tuple[str, ...]:
    """A host-pattern list as declared: literal, `{env: NAME, default: [...]}` (comma-separated) or
    `{config: name}`; templated entries render against config. A value that is not a host pattern once
    rendered (a URL, a path, an undefined name) is refused here, at load, never used literally."""
    if isinstance(value, dict) and "env" in value:
        raw = env.get(value["env"], "")
        items = _split(raw) if raw.strip() else list(value.get("default", []))
    elif isinstance(value, dict):
        if value["config"] not in config:
            raise ProviderSpecError(f"{path}.config", f"no config {value['config']!r} is declared under config")
        items = _split(config[value["config"]])
    else:
        items = list(value)
    out: list[str] = []
    for i, item in enumerate(items):
        if "{{" in item or "{%" in item:
            try:
                item = str(compile_value(item, f"{path}[{i}]")({"config": config}))
            except TemplateError as exc:
                raise ProviderSpecError(f"{path}[{i}]", f"host template does not render against config: {exc}") from None
        for host in _split(item):
            if not _HOST_PATTERN.fullmatch(host):
                raise ProviderSpecError(f"{path}[{i}]", f"{host!r} is not a host pattern (a host name, `*` wildcards "
                                        "allowed; no scheme, port or path)")
            out.append(host.lower())
    return tuple(out)


_HOST_PATTERN = re.compile(r"[A-Za-z0-9*?.\-]+")   # matched against a URL's host name (no port)


def _compile_operation(op: dict[str, Any], path: str, hosts: Any) -> Operation:
    req = op["request"]
    outputs = op.get("outputs", {"items": "`[]`", "item": {"url": "@"}})
    if outputs.get("body") == "file":  # the reply is the file itself: nothing to find inside it
        outputs = {"items": "`[]`", "item": {"url": "@"}, **{k: v for k, v in outputs.items() if k == "metadata"}}
        file_types: tuple[str, ...] | None = tuple(t.lower() for t in op["outputs"]["content_types"])
    else:
        file_types = None
    passthrough = req.get("passthrough")
    reply_view = op.get("view", "body") == "reply"
    if file_types is not None and "async" in op:
        raise ProviderSpecError(f"{path}.outputs.body", "a job's file comes from its result step: declare "
                                "async.result.binary: true instead of outputs.body: file")
    if file_types is not None and op.get("blocked_when") and not reply_view:
        raise ProviderSpecError(f"{path}.blocked_when", "the reply body is a file, so a condition can only read its "
                                "headers or status: add view: reply and write paths such as headers.\"x-flag\"")
    reply_skip = frozenset(op.get("reply_skip", ()))
    operation = Operation(
        method=req["method"],
        path=compile_value(req["path"], f"{path}.request.path"),
        headers={k: compile_value(v, f"{path}.request.headers.{k}") for k, v in req.get("headers", {}).items()},
        query={k: compile_value(v, f"{path}.request.query.{k}") for k, v in req.get("query", {}).items()},
        json=(compile_value(req["multipart"], f"{path}.request.multipart") if "multipart" in req
              else compile_value(req["json"], f"{path}.request.json") if "json" in req else None),
        multipart="multipart" in req,
        passthrough_into=tuple(passthrough.get("into", [])) if passthrough is not None else None,
        items=compile_path(outputs["items"], f"{path}.outputs.items"),
        item={k: compile_path(v, f"{path}.outputs.item.{k}") for k, v in outputs["item"].items()},
        response={k: compile_path(v, f"{path}.outputs.response.{k}") for k, v in outputs.get("response", {}).items()},
        blocked=tuple(BlockRule(compile_path(b["when"], f"{path}.blocked_when[{i}].when"),
                                compile_value(b["message"], f"{path}.blocked_when[{i}].message") if "message" in b else None)
                      for i, b in enumerate(op.get("blocked_when", []))),
        on_empty=op.get("on_empty"),
        job=(_compile_job(op["async"], f"{path}.async", reply_view, hosts, reply_skip) if "async" in op else None),
        takes_mask=bool(op.get("mask", False)),
        idempotency_header=op.get("idempotency", {}).get("header"),
        idempotency_field=op.get("idempotency", {}).get("field"),
        file_types=file_types, reply_view=reply_view,
        metadata={k: compile_path(v, f"{path}.outputs.metadata.{k}") for k, v in outputs.get("metadata", {}).items()},
        reply_skip=reply_skip,
    )
    if reply_skip:
        read = set().union(*(field_names(p) for p in _reply_paths(operation)))
        if read & reply_skip:
            raise ProviderSpecError(f"{path}.reply_skip", f"{', '.join(sorted(read & reply_skip))} is read by a path of "
                                    "this operation, so it cannot be skipped (a skipped member reads as null)")
    return operation


def _reply_paths(op: Operation) -> list[ParsedResult]:
    """Every JMESPath of an operation that reads one of its replies."""
    paths = [op.items, *op.item.values(), *op.response.values(), *op.metadata.values(), *(b.when for b in op.blocked)]
    if op.job is not None:
        job = op.job
        paths += [job.done_when, *(r.when for r in job.failed_when), *(r.message for r in job.failed_when if r.message)]
        paths += [p for p in (job.progress,) if p is not None]
        paths += [s.url for s in (job.poll, job.result, job.cancel) if s is not None and s.url is not None]
    return paths


def _compile_step(step: dict[str, Any], path: str) -> UrlStep:
    return UrlStep(
        url=compile_path(step["url"], f"{path}.url") if "url" in step else None,
        path=compile_value(step["path"], f"{path}.path") if "path" in step else None,
        method=step.get("method", "GET"),
        json=compile_value(step["json"], f"{path}.json") if "json" in step else None,
        headers={k: compile_value(v, f"{path}.headers.{k}") for k, v in step.get("headers", {}).items()},
        binary=bool(step.get("binary", False)),
        query={k: compile_value(v, f"{path}.query.{k}") for k, v in step.get("query", {}).items()},
        endpoint=step.get("endpoint"),
    )


def _compile_job(job: dict[str, Any], path: str, reply_view: bool, hosts: Any, reply_skip: frozenset[str]) -> JobSpec:
    return JobSpec(
        submit_headers={k: compile_value(v, f"{path}.headers.{k}") for k, v in job.get("headers", {}).items()},
        poll=_compile_step(job["poll"], f"{path}.poll"),
        interval_s=float(job.get("interval_s", 0.25)),
        backoff=float(job.get("backoff", 1.5)),
        max_interval_s=float(job.get("max_interval_s", 2.0)),
        deadline_s=float(job.get("deadline_s", 600.0)),
        done_when=compile_path(job["done_when"], f"{path}.done_when"),
        failed_when=tuple(FailureRule(compile_path(r["when"], f"{path}.failed_when[{i}].when"), r["code"], r.get("retryable"),
                                      compile_path(r["message"], f"{path}.failed_when[{i}].message") if "message" in r else None)
                          for i, r in enumerate(job.get("failed_when", []))),
        result=_compile_step(job["result"], f"{path}.result") if "result" in job else None,
        cancel=_compile_step(job["cancel"], f"{path}.cancel") if "cancel" in job else None,
        trusted_hosts=frozenset(hosts(job.get("trusted_hosts", []), f"{path}.trusted_hosts")),
        progress=compile_path(job["progress"], f"{path}.progress") if "progress" in job else None,
        progress_scale=float(job.get("progress_scale", 1.0)),
        reply_view=reply_view, reply_skip=reply_skip,
    )


def _compile_rule(rule: dict[str, Any], path: str) -> ErrorRule:
    retry_after = []
    for i, ra in enumerate(rule.get("retry_after", [])):
        unit = ra.get("unit", "s")
        if "header" in ra:
            retry_after.append(("header", ra["header"].lower(), unit))
        else:
            retry_after.append(("path", compile_path(ra["path"], f"{path}.retry_after[{i}].path"), unit))
    return ErrorRule(
        statuses=_statuses(rule.get("status")),
        when=compile_path(rule["when"], f"{path}.when") if "when" in rule else None,
        code=rule["code"], retryable=rule.get("retryable"),
        message=compile_path(rule["message"], f"{path}.message") if "message" in rule else None,
        param=compile_path(rule["param"], f"{path}.param") if "param" in rule else None,
        retry_after=tuple(retry_after),
        params=dict(rule.get("params", {})),
        retryable_header=rule["retryable_header"].lower() if "retryable_header" in rule else None,
        not_billed=rule.get("not_billed"),
    )
