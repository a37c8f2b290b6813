"""The engine's per-event modules compiled by Cython, with their Python sources as the fallback.

Cython compiles the modules in MODULES as they are: pure Python, no annotation enforced
(annotation_typing off), so the compiled code means what the source says and preview, the
job and the tests run the same engine either way; compiled, it takes about 0.7x the time
per event (README, "Benchmarks"). `rtm compile` (run by `make install`) builds
them into rtm/_compiled/ with the hash of each source. `rtm` puts that folder first on its
package path only while every source still has the hash it was compiled from: an edited
source runs as Python (with a warning) and never as stale machine code.
RTM_PURE_PYTHON=1 runs everything as Python (to profile or debug the engine).
"""

import hashlib
import importlib.machinery
import json
import os
import sys
import warnings
from pathlib import Path

from rtm.errors import RtmError

# The modules an event passes through, in rtm/. Compiled, a module's __file__ is in
# rtm/_compiled/: data files are found through importlib.resources.
MODULES = ("arbitration", "campaigns", "caps", "engine", "events", "expressions", "goals", "matcher", "patterns",
           "preview", "records", "schedule", "send_windows", "sessions", "state", "time_rules", "triggers",
           "variants", "views")
SOURCE_DIR = Path(__file__).parent
COMPILED_DIR = SOURCE_DIR / "_compiled"
MANIFEST = "manifest.json"  # in the compiled folder: the Python and the hash of each source
PURE_PYTHON_ENV = "RTM_PURE_PYTHON"
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]  # e.g. .cpython-311-x86_64-linux-gnu.so


def source_hashes(source_dir: Path = SOURCE_DIR) -> dict[str, str]:
    return {name: hashlib.sha256((source_dir / f"{name}.py").read_bytes()).hexdigest() for name in MODULES}


def stale_modules(source_dir: Path = SOURCE_DIR, compiled_dir: Path = COMPILED_DIR) -> list[str] | None:
    """The modules whose compiled form does not match their source; None when never built."""
    try:
        built = json.loads((compiled_dir / MANIFEST).read_text())
    except (FileNotFoundError, ValueError):
        return None
    if built.get("python") != sys.implementation.cache_tag:
        return list(MODULES)
    hashes = built.get("sources", {})
    return [name for name, digest in source_hashes(source_dir).items()
            if hashes.get(name) != digest or not (compiled_dir / f"{name}{SUFFIX}").exists()]


def activate(package_path: list[str], source_dir: Path = SOURCE_DIR, compiled_dir: Path = COMPILED_DIR) -> bool:
    """Put the compiled modules first on rtm's package path if they match their sources.
    Called by rtm/__init__.py before any of them is imported."""
    if os.environ.get(PURE_PYTHON_ENV):
        return False
    stale = stale_modules(source_dir, compiled_dir)
    if stale is None:
        return False  # never built (a pip install without `rtm compile`): Python, as designed
    if stale:
        warnings.warn(f"rtm's compiled modules do not match their sources ({', '.join(stale)}): running "
                      "them as Python, about 1.4x slower per event. Rebuild with `make install` or "
                      "`rtm compile`.", stacklevel=2)
        return False
    package_path.insert(0, str(compiled_dir))
    return True


def active() -> bool:
    """Whether the engine runs compiled in this process."""
    import rtm.engine

    return Path(rtm.engine.__file__).parent == COMPILED_DIR


def build() -> None:
    """Compile MODULES into COMPILED_DIR (replaced whole, so a half build is never used)."""
    import shutil
    import tempfile

    try:
        from Cython.Build import cythonize
    except ImportError:
        raise RtmError("Cython is not installed: pip install 'rtm[compiled]' (make install does)") from None
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    hashes = source_hashes()  # before compiling: a source edited meanwhile then reads as stale
    with tempfile.TemporaryDirectory(prefix="rtm-compile-") as tmp:
        try:
            extensions = cythonize(
                [Extension(f"rtm.{name}", [str(SOURCE_DIR / f"{name}.py")]) for name in MODULES],
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
        staged = Path(tmp) / "lib" / "rtm"
        (staged / MANIFEST).write_text(json.dumps(
            {"python": sys.implementation.cache_tag, "sources": hashes}, indent=1, sort_keys=True))
        shutil.rmtree(COMPILED_DIR, ignore_errors=True)
        shutil.move(staged, COMPILED_DIR)
