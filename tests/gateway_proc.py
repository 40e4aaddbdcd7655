"""A gateway process for multi-instance tests: the real app (create_app + uvicorn), its providers on a
simulator that lives OUTSIDE it, so killing the gateway does not kill the upstream jobs it started —
as with real providers. Settings come from the environment like `mediagate serve`.

    python -m tests.gateway_proc PORT SIMULATOR_URL
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import uvicorn

from mediagate import catalog
from mediagate.app import create_app
from mediagate.config import Settings
from tests import legacy


class _Handle:
    async def cleanup(self) -> None:
        return None


def main() -> None:
    port, sim_url = int(sys.argv[1]), sys.argv[2]
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)

    async def starter() -> tuple[Any, str]:
        return _Handle(), sim_url
    # the served default plus the retired models these tests use, as GatewayThread loads them (tests/legacy.py)
    app = create_app(Settings.from_env(), catalog.load([*catalog.default_spec_dirs(), legacy.root()]), starter)
    print(f"gateway on {port}", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
