"""Flink settings: flink-conf/config.yaml plus overrides, as one flat mapping.

The same file configures a standalone cluster (through FLINK_CONF_DIR) and the local
MiniCluster (through `local_configuration`), so both run with the same settings.
"""

import os
import site
import sys
from pathlib import Path

import yaml

from rtm import jars, settings
from rtm.errors import RtmError


def _flatten(tree: dict, prefix: str = "") -> dict[str, str]:
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        elif isinstance(value, list):
            flat[name] = ";".join(str(item) for item in value)
        elif isinstance(value, bool):
            flat[name] = str(value).lower()
        else:
            flat[name] = str(value)
    return flat


def load(conf_dir: Path = settings.FLINK_CONF_DIR, overrides: dict | None = None) -> dict[str, str]:
    """config.yaml from `conf_dir` (nested or flat keys), then `overrides` on top."""
    path = conf_dir / "config.yaml"
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except OSError as err:
        raise RtmError(f"cannot read the Flink settings {path}: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise RtmError(f"{path} is not valid YAML: {err}") from err
    flat = _flatten(tree)
    flat.update({key: str(value) for key, value in (overrides or {}).items()})
    return flat


def prometheus_reporter() -> Path:
    """Flink's Prometheus reporter jar, as the PyFlink wheel ships it (plugins/metrics-prometheus)."""
    import pyflink

    folder = Path(pyflink.__file__).parent / "plugins" / "metrics-prometheus"
    found = sorted(folder.glob("flink-metrics-prometheus-*.jar"))
    if not found:
        raise RtmError(f"Flink's Prometheus reporter is missing from {folder}: reinstall apache-flink (`make install`)")
    return found[-1]


def local_overrides() -> dict[str, str]:
    """What a MiniCluster in this process needs on top of the shared file."""
    return {
        # Workers must run the interpreter that has pyflink and rtm installed.
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
        # The jars travel with the job; a cluster has them in its lib dir instead.
        "pipeline.jars": ";".join(jar.as_uri() for jar in jars.job_jars()),
        # A MiniCluster loads metric reporters from its own classpath, not from plugins/
        # (without this: "The reporter factory (...PrometheusReporterFactory) could not be
        # found ... Available factories: []"); PyFlink puts pipeline.classpaths on it.
        "pipeline.classpaths": prometheus_reporter().as_uri(),
        # A MiniCluster is one TaskManager (one embedded CPython: extra slots add no CPU),
        # but a job at parallelism up to 4 must find its slots there.
        "taskmanager.numberOfTaskSlots": "4",
        # Random ports, so a MiniCluster runs beside a standalone cluster or another job.
        "rest.port": "0",
        "blob.server.port": "0",
        # Checkpoints on disk: kept in the JobManager's memory they fail past 5 MB of state
        # (about 18k users), and with restarts off that ends the job.
        "execution.checkpointing.dir": (settings.RTM_HOME / "checkpoints").as_uri(),
        "execution.checkpointing.savepoint-dir": (settings.RTM_HOME / "savepoints").as_uri(),
    }


def local_configuration(overrides: dict | None = None):
    """A pyflink Configuration for a MiniCluster: the file, the local needs, then `overrides`."""
    from pyflink.common import Configuration

    _expose_site_packages()
    config = Configuration()
    for key, value in load(overrides={**local_overrides(), **(overrides or {})}).items():
        config.set_string(key, value)
    return config


def _expose_site_packages() -> None:
    # Thread mode runs Python inside the JVM that PyFlink launches from this process; it
    # finds pyflink and rtm only through PYTHONPATH, which that JVM inherits.
    paths = [str(settings.PROJECT_ROOT), *site.getsitepackages()]
    current = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [*paths, *(p for p in current.split(os.pathsep) if p and p not in paths)]
    )
