"""The checkpoints a local run leaves behind, and the newest one to resume from.

Flink writes a job's checkpoints to <dir>/<job-id>/chk-N/, and a checkpoint is complete
once its `_metadata` file is there. flink-conf/config.yaml retains the latest one when a
job is cancelled or fails, and a killed process leaves it too. A MiniCluster gives every
run a new job id, so `rtm run` gives each job its own <dir> (its name, the broker and its
topics: the Kafka offsets in a checkpoint mean something only there) and resumes from the
newest complete checkpoint in it.
"""

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

from rtm import settings
from rtm.settings import Topics

METADATA = "_metadata"


def job_dir(job_name: str, bootstrap: str, topics: Topics) -> Path:
    """Where the runs of `job_name` over `topics` at `bootstrap` keep their checkpoints."""
    identity = {"job": job_name, "bootstrap": bootstrap, "topics": dataclasses.asdict(topics)}
    text = json.dumps(identity, sort_keys=True)
    directory = settings.RTM_HOME / "checkpoints" / f"{job_name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "job.json").write_text(text + "\n")  # whose checkpoints these are, for people
    return directory


def newest(directory: Path) -> Path | None:
    """The newest complete checkpoint (a chk-N dir) of any job in `directory`, or None."""
    complete = [metadata.parent for metadata in directory.glob(f"*/chk-*/{METADATA}")]
    return max(complete, key=lambda chk: (chk / METADATA).stat().st_mtime_ns, default=None)


def discard(directory: Path, keep: Path | None = None) -> None:
    """Remove the checkpoints in `directory`: all, or all but those of the job holding `keep`."""
    for job in directory.iterdir():
        if job.is_dir() and (keep is None or job != keep.parent):
            shutil.rmtree(job, ignore_errors=True)
