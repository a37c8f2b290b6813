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
    assert compiled.active(), (f"rtm.engine is not compiled; stale modules: {compiled.stale_modules()} "
                               "(None: never built). Run `make install`, or `rtm compile` for its error.")


def _preview(tmp_path: Path, pure_python: bool) -> tuple[str, str, str]:
    env = {k: v for k, v in os.environ.items() if k != compiled.PURE_PYTHON_ENV}
    if pure_python:
        env[compiled.PURE_PYTHON_ENV] = "1"
    out = tmp_path / ("pure" if pure_python else "compiled")
    out.mkdir()
    done = subprocess.run(
        [RTM, "campaigns", "preview", "--campaigns", str(CAMPAIGNS_DIR), "--events", str(tmp_path / "events.jsonl"),
         "--profiles", str(tmp_path / "profiles.jsonl"), "--conversions", str(out / "conversions.jsonl"),
         "--suppressed", str(out / "suppressed.jsonl")],
        env=env, capture_output=True, text=True, check=True)
    return done.stdout, (out / "conversions.jsonl").read_text(), (out / "suppressed.jsonl").read_text()


def test_compiled_and_python_give_the_same_triggers_conversions_and_suppressions(tmp_path):
    users = 1500
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in generator.generate(users)))
    (tmp_path / "profiles.jsonl").write_text("".join(json.dumps(p) + "\n" for p in generator.profiles(users)))
    python, native = _preview(tmp_path, pure_python=True), _preview(tmp_path, pure_python=False)
    triggers = python[0].splitlines()
    assert len(triggers) > 1000 and python[2]  # the reference campaigns fire, the policy suppresses some
    assert native == python


def _built(tmp_path: Path) -> tuple[Path, Path]:
    """A source folder and a compiled folder whose manifest matches it (empty stand-ins for the .so files)."""
    sources, built = tmp_path / "rtm", tmp_path / "compiled"
    sources.mkdir()
    built.mkdir()
    for name in compiled.MODULES:
        (sources / f"{name}.py").write_text(f"# {name}\n")
        (built / f"{name}{compiled.SUFFIX}").write_bytes(b"")
    manifest = {"python": sys.implementation.cache_tag, "sources": compiled.source_hashes(sources)}
    (built / compiled.MANIFEST).write_text(json.dumps(manifest))
    return sources, built


def test_modules_matching_their_sources_go_first_on_the_package_path(tmp_path, monkeypatch):
    monkeypatch.delenv(compiled.PURE_PYTHON_ENV, raising=False)
    sources, built = _built(tmp_path)
    path = [str(sources)]
    assert compiled.activate(path, sources, built) and path == [str(built), str(sources)]


def test_a_source_edited_after_the_build_runs_everything_as_python_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.delenv(compiled.PURE_PYTHON_ENV, raising=False)
    sources, built = _built(tmp_path)
    (sources / "engine.py").write_text("# engine, edited\n")
    path = [str(sources)]
    with pytest.warns(UserWarning, match=r"do not match their sources \(engine\).*rtm compile"):
        assert not compiled.activate(path, sources, built)
    assert path == [str(sources)]


def test_a_build_for_another_python_or_missing_a_module_is_not_used(tmp_path, monkeypatch):
    monkeypatch.delenv(compiled.PURE_PYTHON_ENV, raising=False)
    sources, built = _built(tmp_path)
    (built / f"matcher{compiled.SUFFIX}").unlink()
    assert compiled.stale_modules(sources, built) == ["matcher"]
    (built / compiled.MANIFEST).write_text(json.dumps({"python": "cpython-39", "sources": {}}))
    assert compiled.stale_modules(sources, built) == list(compiled.MODULES)


def test_never_built_or_turned_off_runs_python_silently(tmp_path, monkeypatch, recwarn):
    sources, built = _built(tmp_path)
    monkeypatch.setenv(compiled.PURE_PYTHON_ENV, "1")
    assert not compiled.activate([str(sources)], sources, built)
    monkeypatch.delenv(compiled.PURE_PYTHON_ENV)
    (built / compiled.MANIFEST).unlink()
    assert compiled.stale_modules(sources, built) is None
    assert not compiled.activate([str(sources)], sources, built)
    assert not recwarn.list
