"""Keep freed heap memory for reuse instead of handing it back to the operating system.

A merge allocates and frees the same few block-sized buffers millions of times. glibc's
malloc returns freed memory at the top of its heap to the kernel (trimming) and serves
blocks above an adaptive threshold with fresh ``mmap`` calls, so each new buffer takes a
page fault per 4 KiB page, and the kernel zeroes every page again. On virtual machines a
fault costs microseconds: a merge spent about half its time in them. Raising the trim and
mmap thresholds once keeps the buffers in the heap, where the next block reuses them;
resident memory stays at the peak of the buffers alive at once, which the engine bounds.

Other C libraries (musl, macOS, Windows) are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import sys

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # glibc's largest: bigger buffers (whole tensors) still use mmap
TRIM_THRESHOLD = 2**30


@functools.cache
def keep_freed_memory() -> bool:
    """Tune glibc's malloc as the module docstring says (once per process); False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    log.debug("malloc keeps freed memory: %s", done)
    return done
