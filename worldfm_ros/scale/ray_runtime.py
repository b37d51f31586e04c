"""Connecting to Ray: a clear message when it is missing, and no hang on an address that does not answer."""

from __future__ import annotations

import socket
import threading

from worldfm_ros.errors import WorldFMError

#: Ray versions the project is tested with (requirements/python.txt)
RAY_REQUIREMENT = "ray>=2.40,<3"


def import_ray():
    """The ``ray`` module; WorldFMError saying how to install it when it is missing."""
    try:
        import ray
    except ImportError as exc:
        raise WorldFMError(f"Ray is not installed: pip install '{RAY_REQUIREMENT}' (needed for --ray)") from exc
    return ray


def connect(address: str, num_cpus: int | None = None, timeout_s: float = 30.0):
    """Start or join Ray and return the module: 'local' starts a Ray instance in this process with
    ``num_cpus`` worker slots; 'auto' joins the cluster running on this machine; 'HOST:PORT' (or
    'ray://HOST:PORT') joins that cluster's head, after checking within ``timeout_s`` seconds that
    something answers there. WorldFMError naming the address otherwise."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    if address == "local":
        ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
        return ray
    if address != "auto":
        host, _, port = address.removeprefix("ray://").rpartition(":")
        if not host or not port.isdigit():
            raise WorldFMError(f"--ray: expected local, auto or HOST:PORT, got {address!r}")
        try:
            socket.create_connection((host, int(port)), timeout=timeout_s).close()
        except OSError as exc:
            raise WorldFMError(f"--ray {address}: no Ray head answers there within {timeout_s:g} s ({exc})") from None
    # ray.init retries an address that accepts connections but is no Ray head for a long time:
    # it joins from a helper thread that is given up on after the timeout.
    outcome: dict[str, BaseException | None] = {}

    def join() -> None:
        try:
            ray.init(address=address, logging_level="WARNING", log_to_driver=False)
            outcome["error"] = None
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            outcome["error"] = exc

    thread = threading.Thread(target=join, name="ray-connect", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if "error" not in outcome:
        raise WorldFMError(f"--ray {address}: no Ray cluster answered within {timeout_s:g} s")
    if outcome["error"] is not None:
        raise WorldFMError(f"--ray {address}: cannot join the Ray cluster ({outcome['error']})") from None
    return ray
