"""A small HTTP/1.1 load generator for the server benchmarks: keep-alive connections on
asyncio (uvloop), open loop (requests start on a fixed schedule, latency counted from
the scheduled start, so a stalled server is not hidden) or closed loop (as fast as the
server answers), and a server process started with the `rtm` command, pinned to a core.
"""

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import uvloop

RTM = str(Path(sys.executable).with_name("rtm"))


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> "Connection":
        return cls(*await asyncio.open_connection(host, port))

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = re.search(rb"(?i)content-length: *(\d+)", head)
        body = await self.reader.readexactly(int(length.group(1))) if length else b""
        return status, body

    def close(self) -> None:
        self.writer.close()


def request(method: str, path: str, body: bytes = b"", content_type: str = "application/json") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\n"
    if body or method == "POST":
        head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def _open_loop(host, port, make: Callable[[int], bytes], rate, seconds, connections):
    pool: asyncio.Queue = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await Connection.open(host, port))
    latencies, statuses = [], {}
    total = int(rate * seconds)
    start = time.perf_counter() + 0.05

    async def one(index: int, due: float) -> None:
        connection = await pool.get()
        status, _ = await connection.request(make(index))
        latencies.append(time.perf_counter() - due)
        statuses[status] = statuses.get(status, 0) + 1
        pool.put_nowait(connection)

    tasks = []
    for index in range(total):
        due = start + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index, due)))
    await asyncio.gather(*tasks)
    while not pool.empty():
        pool.get_nowait().close()
    return latencies, statuses


def open_loop(host, port, make, rate: float, seconds: float, connections: int = 64):
    """Start request i at i/rate; returns (latencies in s from each scheduled start, {status: count})."""
    return uvloop.run(_open_loop(host, port, make, rate, seconds, connections))


async def _closed_loop(host, port, make, seconds, connections):
    done, statuses = [0], {}
    stop_at = time.perf_counter() + seconds

    async def worker(number: int) -> None:
        connection = await Connection.open(host, port)
        index = number
        while time.perf_counter() < stop_at:
            status, _ = await connection.request(make(index))
            statuses[status] = statuses.get(status, 0) + 1
            done[0] += 1
            index += connections
        connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(connections)))
    return done[0], time.perf_counter() - started, statuses


def closed_loop(host, port, make, seconds: float, connections: int = 16):
    """As many requests as the server answers; returns (requests, elapsed s, {status: count})."""
    return uvloop.run(_closed_loop(host, port, make, seconds, connections))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (and its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(args: list[str], log: Path, core: int | None = 0) -> tuple[subprocess.Popen, str, int]:
    """`rtm ARGS --port 0`, pinned to `core` (taskset) when given; returns (process, host, port)."""
    pin = ["taskset", "-c", str(core)] if core is not None and shutil.which("taskset") else []
    process = subprocess.Popen([*pin, RTM, *args, "--port", "0"], stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(rb"^rtm \w+ listening on http://([\d.]+):(\d+)", log.read_bytes(), re.MULTILINE)
        if found:
            host, port = found.group(1).decode(), int(found.group(2))
            if _healthy(host, port):
                return process, host, port
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"rtm {' '.join(args)} did not start:\n{log.read_text()}")


def _healthy(host: str, port: int) -> bool:
    async def check():
        try:
            connection = await Connection.open(host, port)
        except OSError:
            return False
        status, _ = await connection.request(request("GET", "/healthz"))
        connection.close()
        return status == 200

    return uvloop.run(check())


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])
