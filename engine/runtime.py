"""What one gateway process holds while it runs: settings, catalog, connection pools, media, sandbox."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from engine.catalog import Catalog
from engine.config import Settings
from engine.media import MediaStore
from engine.provider import Provider
from engine.upstream import SANDBOX_SECRET, Target, Transport


@dataclass
class Runtime:
    settings: Settings
    catalog: Catalog
    media: MediaStore
    transport: Transport = field(default_factory=Transport)
    sandbox_url: str | None = None          # the running simulators, when the sandbox is on

    def sandboxed(self, provider: Provider) -> bool:
        """Whether this provider is served by the simulators for every request."""
        if self.settings.sandbox == "off" or provider.sandbox_path is None:
            return False
        return self.settings.sandbox == "on" or provider.wants_sandbox(os.environ)

    def needs_sandbox(self) -> bool:
        return self.settings.sandbox != "off"

    def target(self, provider: Provider, force_sandbox: bool = False) -> Target | None:
        """Where to call `provider`; None when it can be called nowhere (no keys, no sandbox)."""
        if force_sandbox or self.sandboxed(provider):
            if self.sandbox_url is None or provider.sandbox_path is None:
                return None
            return Target(self.sandbox_url + provider.sandbox_path, {k: SANDBOX_SECRET for k in provider.secrets}, True)
        if provider.missing_secrets:
            return None
        return Target(provider.base_url, dict(provider.secrets), False)
