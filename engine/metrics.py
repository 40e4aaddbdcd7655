"""Prometheus metrics: what the gateway did, by endpoint, model, provider and outcome.

Label values are bounded by the configuration, never by callers: a model label is a catalog id (or
"unknown" when the request named none that resolved), a provider label a provider id, an outcome "ok" or
one of the gateway's error codes; no request ids. `serve --workers N` runs prometheus_client's multiprocess
mode (PROMETHEUS_MULTIPROC_DIR, prepared by the supervisor) so one scrape of any worker sums them all.
Video job gauges are read from the shared job store at scrape time, so they are the same from any worker.
"""

from __future__ import annotations

import os
from typing import Any, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNKNOWN = "unknown"
NO_TEAM = "none"      # the team label of a cost whose caller is unknown (never after a key check)

# request latency: an image generation takes seconds, a video create or a health check milliseconds
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# the gateway's own share: parsing, validation, conversion; a healthy request spends milliseconds here
OVERHEAD_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

REGISTRY = CollectorRegistry(auto_describe=True)
_REQ_LABELS = ("endpoint", "model", "provider", "outcome")

REQUESTS = Counter("mediagate_requests", "Requests answered, by endpoint, model, provider and outcome.",
                   _REQ_LABELS, registry=REGISTRY)
LATENCY = Histogram("mediagate_request_duration_seconds", "Time from the request to its last response byte.",
                    _REQ_LABELS, buckets=LATENCY_BUCKETS_S, registry=REGISTRY)
OVERHEAD = Histogram("mediagate_gateway_overhead_seconds",
                     "Request time not spent waiting on an upstream (calls, downloads, poll sleeps).",
                     ("endpoint",), buckets=OVERHEAD_BUCKETS_S, registry=REGISTRY)
ATTEMPTS = Counter("mediagate_upstream_attempts", "Tries at a provider route, by outcome (ok or an error code).",
                   ("provider", "outcome"), registry=REGISTRY)
FALLBACKS = Counter("mediagate_fallbacks", "Failed tries after which the next route was allowed to run.",
                    ("provider",), registry=REGISTRY)
COOLDOWNS = Counter("mediagate_provider_cooldowns", "Times a provider entered cooldown after repeated failures.",
                    ("provider",), registry=REGISTRY)
FANOUT = Counter("mediagate_fanout_requests", "Attempts split into several upstream calls (n above the native n).",
                 ("provider",), registry=REGISTRY)
FANOUT_CALLS = Counter("mediagate_fanout_calls", "Upstream calls made by split attempts.", ("provider",), registry=REGISTRY)
CONVERSIONS = Counter("mediagate_format_conversions", "Images converted or re-encoded by the gateway.",
                      ("source_format", "format"), registry=REGISTRY)
DELIVERIES = Counter("mediagate_image_deliveries", "Images delivered, by what the provider sent and what the caller got.",
                     ("source", "delivered"), registry=REGISTRY)
COST = Counter("mediagate_cost", "Priced cost of answered requests and completed video jobs (failures: what may be billed).",
               ("model", "provider", "team", "currency"), registry=REGISTRY)
# why a key's request was refused before anything was sent: a fixed set (auth.REFUSAL_REASONS)
REFUSALS = Counter("mediagate_refusals", "Requests refused by a key's limits, budget or scopes, or the wrong-key throttle.",
                   ("reason",), registry=REGISTRY)
HISTORY_DROPPED = Counter("mediagate_history_dropped", "Request records not written (queue full or store unavailable).",
                          registry=REGISTRY)
WEBHOOKS = Counter("mediagate_webhook_deliveries", "Webhook delivery tries, by outcome.", ("outcome",), registry=REGISTRY)


def outcome(status: int, error_code: str | None) -> str:
    if status < 400:
        return "ok"
    return error_code or str(status)


def observe(endpoint: str, model: str | None, provider: str | None, result: str, seconds: float,
            upstream_s: float) -> None:
    labels = (endpoint, model or UNKNOWN, provider or "none", result)
    children = _OBSERVED.get(labels)
    if children is None:   # the label sets are bounded (catalog ids, fixed outcomes), as prometheus' own children are
        children = _OBSERVED[labels] = (REQUESTS.labels(*labels), LATENCY.labels(*labels), OVERHEAD.labels(endpoint))
    children[0].inc()
    children[1].observe(seconds)
    children[2].observe(max(0.0, seconds - upstream_s))


# observe's labelled children, looked up once per label set: `labels()` costs ~2 us each, three per request
_OBSERVED: dict[tuple[str, str, str, str], tuple[Any, Any, Any]] = {}


def cost(model: str | None, provider: str | None, amount: float, currency: str, team: str | None = None) -> None:
    if amount > 0:
        COST.labels(model or UNKNOWN, provider or "none", team or NO_TEAM, currency).inc(amount)


def priced(model: str | None, provider: str | None, price: dict[str, Any] | None, team: str | None = None) -> None:
    """`cost` from a pricing.price result (micros)."""
    if price:
        cost(model, provider, price["total_cost_micros"] / 1_000_000, price["currency"], team)


class _Jobs(Collector):
    """Video job gauges from one `counts()` read of the job store (unfinished jobs only: cheap at any size)."""

    def __init__(self, counts: dict[str, Any] | None, now: float) -> None:
        self.counts, self.now = counts, now

    def collect(self) -> Iterator[GaugeMetricFamily]:
        by_state = GaugeMetricFamily("mediagate_video_jobs", "Unfinished video jobs by state.", labels=["state"])
        depth = GaugeMetricFamily("mediagate_video_queue_depth", "Video jobs waiting to start (queued).")
        oldest = GaugeMetricFamily("mediagate_video_oldest_job_age_seconds", "Age of the oldest unfinished video job.")
        up = GaugeMetricFamily("mediagate_job_store_up", "1 when the job store answered this scrape.")
        up.add_metric([], 0 if self.counts is None else 1)
        if self.counts is not None:
            states = self.counts["states"]
            for state in ("queued", "in_progress", *sorted(set(states) - {"queued", "in_progress"})):
                by_state.add_metric([state], states.get(state, 0))
            depth.add_metric([], states.get("queued", 0))
            first = self.counts.get("oldest_created_at")
            oldest.add_metric([], max(0.0, self.now - first) if first else 0.0)
        yield from (by_state, depth, oldest, up)


def render(job_counts: dict[str, Any] | None, now: float) -> bytes:
    """The exposition text: this process's metrics (every worker's in multiprocess mode) and the job gauges."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    jobs = CollectorRegistry()
    jobs.register(_Jobs(job_counts, now))
    return generate_latest(registry) + generate_latest(jobs)
