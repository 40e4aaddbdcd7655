"""Give big buffers back to the operating system when they are freed (glibc only; elsewhere a no-op).

glibc raises its mmap threshold each time a large mmapped block is freed, up to 32 MB, so after a burst
of multi-megabyte images every later image comes from the heap arenas, which fragment and are not
returned: RSS stays at the burst's peak (bench/RESULTS.md, memory section). A fixed threshold turns the
sliding one off, so every block of MMAP_THRESHOLD_BYTES or more is its own mapping, unmapped on free.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging

log = logging.getLogger("mediagate")
MMAP_THRESHOLD_BYTES = 2 * 1024 * 1024   # blocks this big or bigger are mmapped (and unmapped when freed). Not
# lower: every mmapped block is faulted in page by page when touched, ~10 us a page on this VM, and orjson
# reserves ~6x a string's length for its output, so at 256 KiB a 256x256 image's request (262 KB of base64)
# took ~130 page faults and 2.3 ms of CPU; at 2 MiB ~90 and 1.8 ms. Not higher: 3 MB images must stay
# mmapped, or the heap fragments and RSS stays up after a burst (at 4 MiB: +35 % after 200 WebP requests).
_M_MMAP_THRESHOLD = -3              # mallopt parameter numbers from glibc's malloc.h
_M_TRIM_THRESHOLD = -1
TRIM_THRESHOLD_BYTES = 4 * 1024 * 1024  # free heap top beyond this is returned at once
TRIM_INTERVAL_S = 5.0               # how often free pages inside the arenas (worker threads have their own) go back


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name is not None else None
    except OSError:
        return None


async def trimmer() -> None:
    """Every TRIM_INTERVAL_S, hand free pages in the middle of every arena back (malloc_trim; a ctypes call
    releases the GIL, and it runs in a worker thread, so neither the loop nor other threads wait)."""
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None) if libc is not None else None
    if trim is None:
        return
    while True:
        await asyncio.sleep(TRIM_INTERVAL_S)
        await asyncio.to_thread(trim, 0)


def tune() -> bool:
    """True when glibc took the settings."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    if not ok:
        log.warning("allocator: mallopt refused the mmap/trim thresholds; RSS may stay at its peak after big requests")
    return ok
