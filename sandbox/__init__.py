"""Provider simulators ("sandbox") for mediagate: real wire protocols, real images and MP4 videos,
streamed chat completions, no network."""

from .app import build_app
from .testing import SimulatorThread, start_in_loop

__all__ = ["SimulatorThread", "build_app", "start_in_loop"]
