"""Running rtm's HTTP servers as the user does (the `rtm` command, a process of its own)
on a free port of 127.0.0.1, and reading their Server-Sent Events."""

import json
import re
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from queue import Empty, Queue

import requests

RTM = str(Path(sys.executable).with_name("rtm"))
_LISTENING = re.compile(rb"^rtm \w+ listening on (http://\S+)", re.MULTILINE)


class Server:
    def __init__(self, args: list[str], log: Path):
        self.args, self.log = args, log
        self.url = None
        self.process = None

    def start(self, timeout_s: float = 30) -> "Server":
        self.process = subprocess.Popen([RTM, *self.args, "--port", "0"], stdout=subprocess.DEVNULL,
                                        stderr=self.log.open("ab"))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = _LISTENING.search(self.log.read_bytes())
            if found and self.process.poll() is None:
                self.url = found.group(1).decode()
                # Ready once it answers: the Kafka side reports on /healthz.
                while time.monotonic() < deadline:
                    try:
                        if requests.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                            return self
                    except requests.ConnectionError:
                        pass
                    time.sleep(0.05)
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"rtm {' '.join(self.args)} did not come up; its log:\n{self.log.read_text()}")

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(30)
        # The next start appends to the log: only its own line may be found.
        self.log.write_bytes(_LISTENING.sub(rb"(stopped) \g<0>", self.log.read_bytes()))


@contextmanager
def running(args: list[str], log: Path):
    server = Server(args, log).start()
    try:
        yield server
    finally:
        server.stop()


class EventStream:
    """A Server-Sent Events connection read on a thread: (event, data, arrival time) in `events`."""

    def __init__(self, url: str):
        self.response = requests.get(url, stream=True, timeout=(5, 60), headers={"Accept": "text/event-stream"})
        assert self.response.status_code == 200, self.response.text
        assert self.response.headers["content-type"].startswith("text/event-stream")
        self.events: Queue = Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        event, data = "message", []
        try:
            for line in self.response.iter_lines(chunk_size=1, decode_unicode=True):
                if line == "":
                    if data:
                        self.events.put((event, json.loads("\n".join(data)), time.monotonic()))
                    event, data = "message", []
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
        except (requests.RequestException, AttributeError):
            pass  # closed

    def next(self, timeout_s: float = 10):
        try:
            return self.events.get(timeout=timeout_s)
        except Empty:
            raise AssertionError(f"no event on the stream within {timeout_s} s") from None

    def close(self) -> None:
        self.response.close()


def metric(text: str, name: str, **labels) -> float:
    """The value of one sample in Prometheus text; AssertionError when it is not there."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        sample, _, value = line.rpartition(" ")
        sample_name, _, label_text = sample.partition("{")
        got = ",".join(sorted(label_text.rstrip("}").split(","))) if label_text else ""
        if sample_name == name and got == want:
            return float(value)
    raise AssertionError(f"no sample {name}{{{want}}} in the metrics:\n{text}")
