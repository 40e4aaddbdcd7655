"""Job protocols: after the submit reply, poll until done or failed, fetch the result, cancel on the way out.

Everything provider-specific — where the status lives, which value means done, where the result and
cancel URLs are — is declared under an operation's `async` block; this module only follows it.
Job URLs taken from replies must stay on the provider's own host (or a declared trusted host), since
they receive the provider's credentials.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

from mediagate import errormap, extract, reqctx, upstream
from mediagate.errors import UpstreamError
from mediagate.paths import search, truthy
from mediagate.provider import JobSpec, Provider, UrlStep
from mediagate.upstream import Target, Transport

MAX_TRANSIENT_POLL_FAILURES = 5   # a job is not abandoned for one flaky status call


def _check_failed(job: JobSpec, body: Any) -> None:
    """`body` is what the paths read: the reply body, or the reply view when the operation opted in."""
    for rule in job.failed_when:
        if truthy(search(rule.when, body)):
            message = errormap.sanitize(search(rule.message, body)) if rule.message is not None else None
            raise errormap.make(rule.code, message, retryable=rule.retryable)


def _step_url(step: UrlStep, job: JobSpec, submitted: Any, ctx: dict[str, Any], target: Target) -> str:
    if step.url is not None:
        url = search(step.url, submitted)
        # both come from the submit reply, so asking again can never help: not retryable
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise errormap.make("upstream_malformed", "The provider's job reply has no usable job URL.", retryable=False)
        if not upstream.same_origin_or(url, target.base_url, () if target.sandbox else job.trusted_hosts):
            raise errormap.make("upstream_malformed", "The provider's job URL points at a host it is not trusted for.",
                                retryable=False)
        return url
    assert step.path is not None
    base = target.endpoints[step.endpoint] if step.endpoint is not None else target.base_url
    return upstream.url_for(base, str(step.path(ctx)))


async def _call(transport: Transport, provider: Provider, target: Target, step: UrlStep, job: JobSpec, submitted: Any,
                ctx: dict[str, Any], last: Any = None) -> upstream.UpstreamReply:
    """`job` is the submit reply, `last` the latest job reply (a poll's, or the submit's before any poll): a
    result several steps away reads what the final poll named (a file id) from it."""
    jctx = {**ctx, "job": submitted, "last": submitted if last is None else last}
    body = step.json(jctx) if step.json is not None else None
    sign_as = provider.endpoints[step.endpoint].sigv4 if step.endpoint is not None else None
    request = upstream.build(provider, target, jctx, step.method, _step_url(step, job, submitted, jctx, target),
                             step.headers, step.query, body, sign_as)
    if not step.binary:
        request.reply_skip = job.reply_skip
    return await transport.send(provider, request)


Progress = Callable[[float | None], Awaitable[None]]


async def follow(transport: Transport, provider: Provider, job: JobSpec, target: Target, ctx: dict[str, Any],
                 submitted: Any, background: set[asyncio.Task[Any]], on_progress: Progress | None = None,
                 cancel_upstream: Callable[[], bool] = lambda: True,
                 submitted_headers: dict[str, str] | None = None) -> Any:
    """The final reply body holding the outputs (bytes for a binary result). On a deadline, or when this is
    cancelled and `cancel_upstream()` says so (a caller left, a job was deleted — not a shutdown, after
    which the job is resumed), the upstream job is cancelled too. `on_progress` hears each poll's progress.
    Under `view: reply` the conditions read {body, headers, status}; a resumed job's submit reply has no
    recorded headers, so they read as {}."""
    state = extract.view(job.reply_view, submitted, submitted_headers, 200)
    submitted = state if job.reply_view else submitted   # job URLs are paths of the operation too
    deadline = time.monotonic() + job.deadline_s
    interval = job.interval_s
    transient = 0
    try:
        while True:
            _check_failed(job, state)
            if truthy(search(job.done_when, state)):
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise errormap.make("upstream_timeout", f"{provider.name} did not finish the job within {job.deadline_s:g} s.")
            with reqctx.upstream_wait():   # waiting for the provider's job: not the gateway's overhead
                await asyncio.sleep(min(interval, remaining))
            interval = min(interval * job.backoff, job.max_interval_s)
            try:
                reply = await _call(transport, provider, target, job.poll, job, submitted, ctx, state)
                upstream.check_reply(provider, reply)
                if not isinstance(reply.json, (dict, list)):
                    raise errormap.make("upstream_malformed", f"{provider.name} sent an unreadable job status.")
            except UpstreamError as err:
                transient += 1
                if not err.retryable or err.code == "upstream_auth_failed" or transient > MAX_TRANSIENT_POLL_FAILURES:
                    raise
                continue
            transient = 0
            state = extract.view(job.reply_view, reply.json, reply.headers, reply.status)
            if on_progress is not None and job.progress is not None:
                value = search(job.progress, state)
                number = isinstance(value, (int, float)) and not isinstance(value, bool)
                await on_progress(float(value) * job.progress_scale if number else None)
        if job.result is None:
            return state["body"] if job.reply_view else state
        reply = await _call(transport, provider, target, job.result, job, submitted, ctx, state)
        if job.result.binary and 200 <= reply.status < 300:
            return reply.body
        upstream.check_reply(provider, reply)
        return reply.json
    except (asyncio.CancelledError, UpstreamError) as exc:
        wanted = cancel_upstream() if isinstance(exc, asyncio.CancelledError) else exc.code == "upstream_timeout"
        if job.cancel is not None and wanted:
            task = asyncio.ensure_future(_cancel(transport, provider, target, job, submitted, ctx, state))
            background.add(task)
            task.add_done_callback(background.discard)
        raise


async def _cancel(transport: Transport, provider: Provider, target: Target, job: JobSpec, submitted: Any,
                  ctx: dict[str, Any], last: Any = None) -> None:
    assert job.cancel is not None
    try:
        await _call(transport, provider, target, job.cancel, job, submitted, ctx, last)
    except UpstreamError:
        pass  # best effort: the job's own deadline ends it upstream
