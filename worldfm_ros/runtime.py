"""Process-wide torch settings: the CPU thread count, set in one place for every entry point.

torch starts one intra-op thread per core. On a machine that is busy with anything else
those threads wait for each other at every operator's barrier, and every stage (render,
hole filling, the frame model) gets several times slower; one thread is fast whatever the
load (benchmarks/RESULTS.md, "Torch threads"). The node (parameter ``torch_threads``), the
``worldfm`` commands (``--threads``) and ``WorldFMEnv(threads=...)`` all go through
:func:`apply_torch_threads`.
"""

from __future__ import annotations

import argparse

from worldfm_ros.errors import ConfigError

# torch CPU threads unless configured; 0 means torch's own default (one per core).
DEFAULT_TORCH_THREADS = 1

_torch_default: int | None = None  # torch's own count, remembered before the first change
_interop_done = False


def check_threads(threads: int, what: str = "torch_threads") -> int:
    """``threads`` if it is a thread count (>= 0, 0 = torch's default), else ConfigError naming ``what``."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ConfigError(f"{what}: expected a thread count >= 0 (0 = one per core, torch's default), "
                          f"got {threads!r}")
    return threads


def apply_torch_threads(threads: int, what: str = "torch_threads") -> int:
    """Set torch's CPU thread count for this process; returns ``torch.get_num_threads()``.

    threads: intra-op threads (>= 1), or 0 for torch's own default (one per core, restored if
    an earlier call changed it). The inter-op pool is sized once, on the first call that asks
    for a count, and only if torch has not started it yet (torch refuses to resize it later).
    """
    global _torch_default, _interop_done
    import torch

    check_threads(threads, what)
    if _torch_default is None:
        _torch_default = torch.get_num_threads()
    torch.set_num_threads(threads or _torch_default)
    if threads and not _interop_done:
        _interop_done = True
        try:
            torch.set_num_interop_threads(threads)
        except RuntimeError:  # already started (some parallel work ran): keep its size
            pass
    return torch.get_num_threads()


def add_threads_argument(parser: argparse.ArgumentParser, default: int | None = DEFAULT_TORCH_THREADS,
                         default_text: str | None = None) -> None:
    """``--threads N``: torch CPU threads for the command (read by :func:`worldfm_ros.cli.main`)."""
    shown = default_text or f"{default}; 0 = one per core"
    parser.add_argument("--threads", type=int, default=default, metavar="N",
                        help=f"torch CPU threads (default {shown}; more is slower on a busy machine)")
