"""Jobs on a Flink cluster through its REST API: list, status, cancel, savepoints.

Any cluster will do (the one `rtm cluster start` runs, docker, Kubernetes): only its
REST address is needed. A cluster that does not answer, an unknown job or a failed
savepoint is an RtmError naming what was tried, never a traceback.
"""

import re
from pathlib import Path

import requests

from rtm.errors import RtmError
from rtm.waiting import WaitFailed, wait_until

TIMEOUT_S = 10
SAVEPOINT_TIMEOUT_S = 300
CANCEL_TIMEOUT_S = 60
# States after which a job does nothing more (FINISHED, CANCELED, FAILED, ...).
_TERMINAL = {"FINISHED", "CANCELED", "FAILED", "SUSPENDED"}


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


class FlinkRest:
    """The REST API of the cluster at HOST:PORT."""

    def __init__(self, address: str):
        self.url = f"http://{address}"

    def _call(self, method: str, path: str, **kwargs) -> dict:
        try:
            response = requests.request(method, f"{self.url}{path}", timeout=TIMEOUT_S, **kwargs)
        except requests.RequestException as err:
            raise RtmError(
                f"no Flink cluster answers at {self.url} ({type(err).__name__}): start one with "
                "`rtm cluster start`, or pass --jobmanager HOST:PORT"
            ) from None
        if not response.ok:
            try:
                errors = response.json().get("errors") or [response.text]
            except ValueError:
                errors = [response.text]
            raise RtmError(f"{method} {self.url}{path}: {response.status_code}: {_first_line(str(errors[0]))}")
        return response.json() if response.content else {}

    def _job_path(self, job_id: str) -> str:
        if not re.fullmatch(r"[0-9a-fA-F]{32}", job_id):
            raise RtmError(f"{job_id!r} is not a JobID (32 hex digits): `rtm jobs list` shows them")
        return f"/jobs/{job_id.lower()}"

    def overview(self) -> dict:
        return self._call("GET", "/overview")

    def jobs(self) -> list[dict]:
        """Every job the cluster knows, oldest first: jid, name, state, start-time, ..."""
        return sorted(self._call("GET", "/jobs/overview")["jobs"], key=lambda job: job["start-time"])

    def job(self, job_id: str) -> dict:
        """The job's details (name, state, vertices), `failure`: its latest exception, if
        any, `taskmanagers`: the ids of the TaskManagers running its tasks, and
        `checkpoint`: its latest completed checkpoint (id, external_path, ...) and
        `restored`: the checkpoint it last restarted from (id, external_path, ...), if any."""
        path = self._job_path(job_id)
        details = self._call("GET", path)
        entries = self._call("GET", f"{path}/exceptions?maxExceptions=1")["exceptionHistory"]["entries"]
        details["failure"] = _root_cause(entries[0]["stacktrace"]) if entries else None
        details["taskmanagers"] = sorted({
            taskmanager["taskmanager-id"]
            for vertex in details["vertices"]
            for taskmanager in self._call("GET", f"{path}/vertices/{vertex['id']}/taskmanagers")["taskmanagers"]
            if taskmanager["status"] == "RUNNING"
        })
        latest = self._call("GET", f"{path}/checkpoints").get("latest") or {}
        details["checkpoint"], details["restored"] = latest.get("completed"), latest.get("restored")
        return details

    def cancel(self, job_id: str) -> str:
        """Cancel the job; return its state once it has ended."""
        self._call("PATCH", f"{self._job_path(job_id)}?mode=cancel")
        return self.wait_until_ended(job_id, CANCEL_TIMEOUT_S)

    def _state(self, job_id: str) -> str:
        return self._call("GET", self._job_path(job_id))["state"]

    def wait_until_ended(self, job_id: str, timeout_s: float) -> str:
        """The job's state once it has ended."""

        def ended() -> str | None:
            state = self._state(job_id)
            return state if state in _TERMINAL else None

        try:
            return wait_until(ended, timeout_s, 0.5, f"job {job_id} to end")
        except WaitFailed:
            raise RtmError(f"job {job_id} is still {self._state(job_id)} after {timeout_s:.0f} s") from None

    def savepoint(self, job_id: str, directory: str | None = None, stop: bool = False) -> str:
        """Take a savepoint (with `stop`: then stop the job, sinks flushed) into `directory`
        (a path or URI; default: the cluster's execution.checkpointing.savepoint-dir); return its location."""
        path = self._job_path(job_id)
        target = None if directory is None else directory if "://" in directory else Path(directory).resolve().as_uri()
        if stop:
            trigger = self._call("POST", f"{path}/stop", json={"targetDirectory": target, "drain": False})
        else:
            trigger = self._call("POST", f"{path}/savepoints", json={"target-directory": target, "cancel-job": False})

        def completed() -> dict | None:
            status = self._call("GET", f"{path}/savepoints/{trigger['request-id']}")
            return status if status["status"]["id"] == "COMPLETED" else None

        try:
            status = wait_until(completed, SAVEPOINT_TIMEOUT_S, 0.5, f"the savepoint of job {job_id}")
        except WaitFailed:
            raise RtmError(f"the savepoint of job {job_id} did not complete within {SAVEPOINT_TIMEOUT_S} s") from None
        operation = status["operation"]
        if "failure-cause" in operation:
            cause = _root_cause(operation["failure-cause"].get("stack-trace", ""))
            hint = "" if directory else " (no --dir: does the cluster set execution.checkpointing.savepoint-dir?)"
            raise RtmError(f"the savepoint of job {job_id} failed: {cause}{hint}")
        return operation["location"]


def _root_cause(stacktrace: str) -> str:
    """The deepest exception of a Java stack trace, in one line."""
    causes = [line.removeprefix("Caused by: ") for line in stacktrace.splitlines() if line.startswith("Caused by: ")]
    return causes[-1] if causes else _first_line(stacktrace) or "(no details)"
