"""A launched process ends, cleanly, when its launcher dies.

``ros2 launch`` (launch 3.4, Jazzy) answers SIGINT by asking each process to stop and waiting, but
answers SIGTERM (what ``kill``, systemd and ``docker stop`` send) by exiting at once, "using SIGTERM
can result in orphaned processes" (ros2/launch#666); a launch file cannot change that, since the
launch service sees the signal whatever handler the file installs. The node and the recorder kept
running and the bag was never closed (no metadata.yaml). With :func:`end_with_parent` they get
SIGTERM when the launcher exits, or is killed outright, and shut down as on SIGINT.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def end_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Ask Linux to send ``sig`` to this process when the thread that started it ends (prctl
    PR_SET_PDEATHSIG); returns whether it was set (False off Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        return False
    if os.getppid() != parent:  # the launcher died meanwhile: nobody is left to send it
        os.kill(os.getpid(), sig)
    return True
