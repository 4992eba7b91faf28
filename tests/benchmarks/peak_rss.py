"""Peak resident memory of the current process, for the benchmark scripts.

Read from ``VmHWM`` in /proc/self/status, not from ``ru_maxrss``: on Linux the kernel carries
the high-water mark of the image a process replaces at ``exec`` into ``ru_maxrss``, so a child
started by a large benchmark process would report its parent's peak.  ``ru_maxrss`` is only
the fallback where /proc is missing.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

MB = 2**20


def peak_rss_mb() -> float:
    """This process's peak RSS in MB (2**20 bytes)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / MB
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / MB
