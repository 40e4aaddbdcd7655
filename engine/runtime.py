"""What one gateway process holds while it runs: settings, catalog, connection pools, media, sandbox."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Any

from mediagate.catalog import Catalog
from mediagate.config import Settings
from mediagate.health import Health
from mediagate.media import MediaStore
from mediagate.oauth import TokenCache
from mediagate.safefetch import FetchPolicy
from mediagate.provider import Provider
from mediagate.replybudget import ReplyBudget
from mediagate.upstream import SANDBOX_SECRET, Target, Transport


@dataclass
class Runtime:
    settings: Settings
    catalog: Catalog
    media: MediaStore
    transport: Transport = field(default_factory=Transport)
    sandbox_url: str | None = None          # the running simulators, when the sandbox is on
    tokens: TokenCache = field(default_factory=TokenCache)
    fetch_policy: FetchPolicy = field(default_factory=FetchPolicy)
    jobs: Any = None                        # mediagate.jobstore.JobStore, opened at start-up
    counters: Any = None                    # mediagate.counters.Counters
    stores: Any = None                      # mediagate.stores.Stores: which backend, and closing them
    runner: Any = None                      # mediagate.jobrunner.JobRunner: this process's video jobs
    videos_media: Any = None                # mediagate.media.MediaStore for finished videos
    webhook_secret: str = ""
    history: Any = None                     # mediagate.history.Recorder: request records, written off the hot path
    job_finished: Any = None                # async (rt, job doc): a video job ended; charge it (mediagate.auth)
    health: Health = field(default_factory=Health)
    background: set[asyncio.Task[Any]] = field(default_factory=set)   # upstream cancels in flight
    reply_budget: ReplyBudget = field(init=False)     # provider replies held until delivered (settings' cap)

    def __post_init__(self) -> None:
        self.fetch_policy = FetchPolicy.parse(self.settings.fetch_allow)
        self.reply_budget = ReplyBudget(self.settings.max_held_reply_bytes)

    def sandboxed(self, provider: Provider) -> bool:
        """Whether this provider is served by the simulators for every request."""
        return sandboxed(self.settings, provider)

    def needs_sandbox(self) -> bool:
        return self.settings.sandbox != "off"

    def target(self, provider: Provider, force_sandbox: bool = False) -> Target | None:
        """Where to call `provider`; None when it can be called nowhere (no keys, no sandbox)."""
        if force_sandbox or self.sandboxed(provider):
            if self.sandbox_url is None or provider.sandbox_path is None:
                return None
            return Target(self.sandbox_url + provider.sandbox_path, {k: SANDBOX_SECRET for k in provider.secrets}, True,
                          {n: self.sandbox_url + (e.sandbox_path or provider.sandbox_path) for n, e in provider.endpoints.items()})
        if provider.missing_secrets:
            return None
        return Target(provider.base_url, dict(provider.secrets), False, {n: e.base_url for n, e in provider.endpoints.items()})

    async def authorize(self, provider: Provider, target: Target) -> Target:
        """Add `secrets.token` from the provider's token grant, unless sandboxed or a static token is set."""
        if provider.token is None or target.sandbox:
            return target
        unless = provider.spec["token"].get("unless_secret")
        if unless and target.secrets.get(unless):
            return target
        token = await self.tokens.token(provider, target.secrets, self.transport.session(provider))
        return Target(target.base_url, {**target.secrets, "token": token}, target.sandbox, target.endpoints)


def sandboxed(settings: Settings, provider: Provider) -> bool:
    """Whether `provider` is served by the simulators for every request (also asked before any Runtime
    exists, by the `serve --workers` supervisor that starts the simulators for all workers)."""
    if settings.sandbox == "off" or provider.sandbox_path is None:
        return False
    return settings.sandbox == "on" or provider.wants_sandbox(os.environ)
