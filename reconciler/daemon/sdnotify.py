"""The systemd notify protocol, by hand: readiness, watchdog pings, status, stopping.

Owns: sending ``READY=1``, ``WATCHDOG=1``, ``STATUS=...`` and ``STOPPING=1`` datagrams to
``$NOTIFY_SOCKET`` (a path or an abstract socket starting with ``@``), and reading the
watchdog interval systemd asks for. Everything is a no-op outside systemd.
"""

from __future__ import annotations

import os
import socket


def notify(state: str) -> bool:
    """Send ``state``; True when a socket was there to receive it."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    target = "\0" + addr[1:] if addr.startswith("@") else addr
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        try:
            s.sendto(state.encode(), target)
        except OSError:
            return False
    return True


def ready() -> bool:
    return notify("READY=1")


def watchdog() -> bool:
    return notify("WATCHDOG=1")


def stopping() -> bool:
    return notify("STOPPING=1")


def status(text: str) -> bool:
    return notify("STATUS=" + text.replace("\n", " ")[:200])


def watchdog_interval() -> float | None:
    """Seconds between required watchdog pings, when systemd asked this process for them."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1_000_000
    except ValueError:
        return None
