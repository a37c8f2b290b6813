"""Where things live and the defaults every command shares, in one place.

Each location can be moved with an environment variable, so tests and CI can run
several isolated brokers and jobs side by side.
"""

import os
from dataclasses import astuple, dataclass
from pathlib import Path


def _project_root() -> Path:
    # The project installs editable from its checkout, so the package's parent is the
    # repo (with flink-conf/, campaigns/, sql/ and .jars/). Elsewhere: the current dir.
    if "RTM_PROJECT_ROOT" in os.environ:
        return Path(os.environ["RTM_PROJECT_ROOT"]).resolve()
    checkout = Path(__file__).resolve().parent.parent
    return checkout if (checkout / "pyproject.toml").exists() else Path.cwd()


PROJECT_ROOT = _project_root()
JARS_DIR = Path(os.environ.get("RTM_JARS_DIR", PROJECT_ROOT / ".jars"))
# Runtime state of the commands: the embedded broker's pid file and logs, job logs.
RTM_HOME = Path(os.environ.get("RTM_HOME", PROJECT_ROOT / ".rtm"))
FLINK_CONF_DIR = Path(os.environ.get("RTM_FLINK_CONF_DIR", PROJECT_ROOT / "flink-conf"))
CAMPAIGNS_DIR = PROJECT_ROOT / "campaigns"
SQL_DIR = PROJECT_ROOT / "sql"

# The topics of docs/CONTRACTS.md, "Topics".
EVENTS_TOPIC = "rtm.events"
PROFILES_TOPIC = "rtm.profiles"
CAMPAIGNS_TOPIC = "rtm.campaigns"
TRIGGERS_TOPIC = "rtm.triggers"
SESSIONS_TOPIC = "rtm.sessions"
DLQ_TOPIC = "rtm.dlq"
LATE_TOPIC = "rtm.late"
CONVERSIONS_TOPIC = "rtm.conversions"
SUPPRESSED_TOPIC = "rtm.suppressed"


@dataclass(frozen=True)
class Topics:
    """The campaign job's topics by role; a run may rename any (`rtm run --topic NAME=TOPIC`)."""

    events: str = EVENTS_TOPIC
    profiles: str = PROFILES_TOPIC
    campaigns: str = CAMPAIGNS_TOPIC
    triggers: str = TRIGGERS_TOPIC
    sessions: str = SESSIONS_TOPIC
    dlq: str = DLQ_TOPIC
    late: str = LATE_TOPIC
    conversions: str = CONVERSIONS_TOPIC
    suppressed: str = SUPPRESSED_TOPIC

    @property
    def compacted(self) -> tuple[str, ...]:
        """The slow data: what counts is the latest value per key, and a tombstone removes it."""
        return (self.profiles, self.campaigns)


ALL_TOPICS = astuple(Topics())
COMPACTED_TOPICS = Topics().compacted
