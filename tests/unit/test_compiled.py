"""The engine's compiled modules (rtm.compiled): used only while they match their sources,
and the same answers as Python."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rtm import compiled, generator
from rtm.settings import CAMPAIGNS_DIR

RTM = str(Path(sys.executable).with_name("rtm"))


def test_the_engine_runs_compiled_after_make_install():
    assert compiled.active(), (f"the engine is not compiled; stale modules: {compiled.stale()} "
                               "(None: never built). Run `make install`, or `rtm compile` for its error.")


def _preview(tmp_path: Path, pure_python: bool) -> tuple[str, str, str, str]:
    env = {k: v for k, v in os.environ.items() if k != compiled.PURE_PYTHON_ENV}
    if pure_python:
        env[compiled.PURE_PYTHON_ENV] = "1"
    out = tmp_path / ("pure" if pure_python else "compiled")
    out.mkdir()
    done = subprocess.run(
        [RTM, "campaigns", "preview", "--campaigns", str(CAMPAIGNS_DIR), "--events", str(tmp_path / "events.jsonl"),
         "--profiles", str(tmp_path / "profiles.jsonl"), "--conversions", str(out / "conversions.jsonl"),
         "--suppressed", str(out / "suppressed.jsonl"), "--sessions", str(out / "sessions.jsonl")],
        env=env, capture_output=True, text=True, check=True)
    return (done.stdout, *((out / f"{name}.jsonl").read_text() for name in ("conversions", "suppressed", "sessions")))


def test_compiled_and_python_give_the_same_triggers_conversions_suppressions_and_sessions(tmp_path):
    users = 1500
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in generator.generate(users)))
    (tmp_path / "profiles.jsonl").write_text("".join(json.dumps(p) + "\n" for p in generator.profiles(users)))
    python, native = _preview(tmp_path, pure_python=True), _preview(tmp_path, pure_python=False)
    triggers = python[0].splitlines()
    assert len(triggers) > 1000 and python[2] and python[3]  # they fire, the policy suppresses some
    assert native == python


def _built(tmp_path: Path) -> Path:
    """A package folder whose compiled folder matches its sources (empty stand-ins for the .so files)."""
    sources = tmp_path / "rtm"
    built = sources / compiled.COMPILED
    built.mkdir(parents=True)
    for name in compiled.RTM.modules:
        (sources / f"{name}.py").write_text(f"# {name}\n")
        (built / f"{name}{compiled.SUFFIX}").write_bytes(b"")
    manifest = {"python": sys.implementation.cache_tag, "sources": compiled.source_hashes(compiled.RTM.modules, sources)}
    (built / compiled.MANIFEST).write_text(json.dumps(manifest))
    return sources


def test_modules_matching_their_sources_go_first_on_the_package_path(tmp_path, monkeypatch):
    monkeypatch.delenv(compiled.PURE_PYTHON_ENV, raising=False)
    sources = _built(tmp_path)
    path = [str(sources)]
    assert compiled.activate(compiled.RTM, path) and path == [str(sources / compiled.COMPILED), str(sources)]


def test_a_source_edited_after_the_build_runs_everything_as_python_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.delenv(compiled.PURE_PYTHON_ENV, raising=False)
    sources = _built(tmp_path)
    (sources / "engine.py").write_text("# engine, edited\n")
    path = [str(sources)]
    with pytest.warns(UserWarning, match=r"rtm's compiled modules do not match their sources \(engine\).*rtm compile"):
        assert not compiled.activate(compiled.RTM, path)
    assert path == [str(sources)]


def test_a_build_for_another_python_or_missing_a_module_is_not_used(tmp_path):
    sources = _built(tmp_path)
    (sources / compiled.COMPILED / f"matcher{compiled.SUFFIX}").unlink()
    assert compiled.stale_modules(compiled.RTM.modules, sources) == ["matcher"]
    (sources / compiled.COMPILED / compiled.MANIFEST).write_text(json.dumps({"python": "cpython-39", "sources": {}}))
    assert compiled.stale_modules(compiled.RTM.modules, sources) == list(compiled.RTM.modules)


def test_never_built_or_turned_off_runs_python_silently(tmp_path, monkeypatch, recwarn):
    sources = _built(tmp_path)
    monkeypatch.setenv(compiled.PURE_PYTHON_ENV, "1")
    assert not compiled.activate(compiled.RTM, [str(sources)])
    monkeypatch.delenv(compiled.PURE_PYTHON_ENV)
    (sources / compiled.COMPILED / compiled.MANIFEST).unlink()
    assert compiled.stale_modules(compiled.RTM.modules, sources) is None
    assert not compiled.activate(compiled.RTM, [str(sources)])
    assert not recwarn.list
