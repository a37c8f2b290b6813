"""The per-event modules compiled by Cython, with their Python sources as the fallback.

Cython compiles the modules of PACKAGES (rtm's engine, the job's udfs) as they are: pure
Python, no annotation enforced (annotation_typing off), so the compiled code means what
the source says and preview, the job and the tests run the same engine either way.
What compiling gains depends on the CPU: 0.65-0.85x the time per event on one machine,
none on another (README, "The compiled engine"). `rtm compile` (run by `make install`) builds
them into rtm/_compiled/ and udfs/_compiled/ with the hash of each source. A package puts
that folder first on its path only while every source still has the hash it was compiled
from: an edited source runs as Python (with a warning) and never as stale machine code.
RTM_PURE_PYTHON=1 runs everything as Python (to profile or debug the engine).
"""

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from rtm.errors import RtmError


@dataclass(frozen=True)
class Package:
    """A package with compiled modules, in `<its folder>/_compiled/`. Compiled, a module's
    __file__ is in that folder: data files are found through importlib.resources."""

    name: str
    modules: tuple[str, ...]

    def source_dir(self) -> Path:
        return Path(importlib.util.find_spec(self.name).origin).parent


# The modules an event passes through: the engine's, and the job's half of its operator.
RTM = Package("rtm", ("arbitration", "campaigns", "caps", "engine", "events", "expressions", "goals", "matcher",
                      "patterns", "preview", "records", "schedule", "send_windows", "sessions", "state",
                      "time_rules", "triggers", "variants", "views"))
UDFS = Package("udfs", ("campaign_engine", "rows"))
PACKAGES = (RTM, UDFS)
COMPILED = "_compiled"  # the folder, in each package's
MANIFEST = "manifest.json"  # in the compiled folder: the Python and the hash of each source
PURE_PYTHON_ENV = "RTM_PURE_PYTHON"
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]  # e.g. .cpython-311-x86_64-linux-gnu.so


def source_hashes(modules: tuple[str, ...], source_dir: Path) -> dict[str, str]:
    return {name: hashlib.sha256((source_dir / f"{name}.py").read_bytes()).hexdigest() for name in modules}


def stale_modules(modules: tuple[str, ...], source_dir: Path) -> list[str] | None:
    """The modules whose compiled form does not match their source; None when never built."""
    compiled_dir = source_dir / COMPILED
    try:
        built = json.loads((compiled_dir / MANIFEST).read_text())
    except (FileNotFoundError, ValueError):
        return None
    if built.get("python") != sys.implementation.cache_tag:
        return list(modules)
    hashes = built.get("sources", {})
    return [name for name, digest in source_hashes(modules, source_dir).items()
            if hashes.get(name) != digest or not (compiled_dir / f"{name}{SUFFIX}").exists()]


def activate(package: Package, package_path: list[str]) -> bool:
    """Put the package's compiled modules first on its path if they match their sources.
    Called by the package's __init__.py, with its __path__, before any of them is imported."""
    if os.environ.get(PURE_PYTHON_ENV):
        return False
    source_dir = Path(package_path[0])
    stale = stale_modules(package.modules, source_dir)
    if stale is None:
        return False  # never built (a pip install without `rtm compile`): Python, as designed
    if stale:
        warnings.warn(f"{package.name}'s compiled modules do not match their sources ({', '.join(stale)}): "
                      "running them as Python (on some CPUs slower per event). Rebuild with `make install` or "
                      "`rtm compile`.", stacklevel=2)
        return False
    package_path.insert(0, str(source_dir / COMPILED))
    return True


def active() -> bool:
    """Whether the engine and the job's half of its operator run compiled in this process."""
    import rtm.engine
    import udfs.campaign_engine

    return all(Path(m.__file__).parent.name == COMPILED for m in (rtm.engine, udfs.campaign_engine))


def stale() -> dict[str, list[str] | None]:
    """Per package, its stale modules (None: never built)."""
    return {p.name: stale_modules(p.modules, p.source_dir()) for p in PACKAGES}


def build() -> None:
    """Compile every package's modules into its compiled folder (replaced whole, so a half
    build is never used)."""
    import shutil
    import tempfile

    try:
        from Cython.Build import cythonize
    except ImportError:
        raise RtmError("Cython is not installed: pip install 'rtm[compiled]' (make install does)") from None
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    sources = {p.name: p.source_dir() for p in PACKAGES}
    # Hashed before compiling: a source edited meanwhile then reads as stale.
    hashes = {p.name: source_hashes(p.modules, sources[p.name]) for p in PACKAGES}
    with tempfile.TemporaryDirectory(prefix="rtm-compile-") as tmp:
        try:
            extensions = cythonize(
                [Extension(f"{p.name}.{name}", [str(sources[p.name] / f"{name}.py")])
                 for p in PACKAGES for name in p.modules],
                build_dir=tmp, quiet=True, nthreads=os.cpu_count() or 1,
                # binding: functions stay introspectable (functools.wraps, jinja2's sandbox);
                # annotation_typing off: annotations stay documentation, as in Python.
                compiler_directives={"language_level": 3, "binding": True, "annotation_typing": False})
            command = build_ext(Distribution({"ext_modules": extensions}))
            command.build_lib, command.build_temp = f"{tmp}/lib", f"{tmp}/temp"
            command.parallel = os.cpu_count() or 1
            command.ensure_finalized()
            command.run()
        except Exception as err:  # Cython's and the C compiler's errors have no common type
            raise RtmError(f"compiling the engine's modules failed ({type(err).__name__}: {err}); rtm still "
                           "runs, as Python. A C compiler and Python's headers are needed "
                           "(Debian: apt-get install gcc python3-dev)") from err
        for package in PACKAGES:
            staged, target = Path(tmp) / "lib" / package.name, sources[package.name] / COMPILED
            (staged / MANIFEST).write_text(json.dumps(
                {"python": sys.implementation.cache_tag, "sources": hashes[package.name]}, indent=1, sort_keys=True))
            shutil.rmtree(target, ignore_errors=True)
            shutil.move(staged, target)
