"""Background JVMs that rtm starts and stops: the Kafka broker and the Flink cluster.

Each runs in a process group of its own, so it outlives the command that started it and
stopping it signals everything it spawned. The helpers here are what both need: find
Java, pick and check loopback ports, tell a live process from a dead one, stop a group.
"""

import math
import os
import shutil
import signal
import socket
from pathlib import Path

from rtm.errors import RtmError
from rtm.waiting import WaitFailed, wait_until


def java() -> str:
    """The `java` of JAVA_HOME, else the one on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    found = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not found or not Path(found).exists():
        raise RtmError(
            "Java was not found (no JAVA_HOME, no `java` on PATH): install Java 17 or newer, "
            "e.g. `apt-get install openjdk-17-jre-headless`, or set JAVA_HOME"
        )
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) still answers kill(0).
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop_group(pid: int, timeout_s: float) -> None:
    """SIGTERM the process group led by `pid`, SIGKILL it after `timeout_s`, reap it."""
    if alive(pid):
        os.killpg(pid, signal.SIGTERM)
        try:
            wait_until(lambda: not alive(pid), timeout_s, 0.1, f"process group {pid} to end")
        except WaitFailed:
            os.killpg(pid, signal.SIGKILL)
            wait_until(lambda: not alive(pid), math.inf, 0.05, f"process group {pid} to die")  # SIGKILL is not refused
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it when this process started it
    except ChildProcessError:
        pass
