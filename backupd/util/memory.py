"""The C heap of a long-running process whose runs start short-lived threads (glibc's malloc settings).

glibc serves a block of at least its mmap threshold (128 KiB at first) as a mapping of its own, unmapped when
freed; but the first time such a block is freed it raises the threshold to that block's size (up to 32 MiB) and
the trim threshold to twice that. From then on the archive's 1 MiB buffers and zstd's job buffers come from the
heap of whichever arena the thread that asked uses, and every arena keeps the free space at its top resident up
to the raised trim threshold (malloc_trim() does not shrink the heaps of thread arenas). Each run's threads
(runner, compressor, writer, zstd workers) land on arenas in a different order, so the daemon's resting RSS
grew by 10-20 MiB a run until every arena held its high-water mark. A fixed threshold keeps those buffers
mappings of their own: a finished run gives them back.
"""
from __future__ import annotations

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3     # mallopt's parameter numbers (malloc.h)
MMAP_THRESHOLD = 512 << 10      # blocks from this size up are mappings: above a small file's read (at most
                                # 128 KiB), below the archive's 1 MiB buffers and zstd's 2 MiB jobs
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD     # free space a heap keeps at its top (glibc's own ratio)


def keep_large_blocks_mapped() -> bool:
    """Fix malloc's mmap and trim thresholds (no longer raised as blocks are freed); False where the C library
    has no mallopt or refuses."""
    try:
        import ctypes
        mallopt = ctypes.CDLL(None).mallopt
    except (ImportError, OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settings = ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return all([mallopt(parameter, value) == 1 for parameter, value in settings])
