"""Benchmark (not a test): `rtm campaigns preview` against a bare `json.loads` loop, whole process.

    .venv/bin/python bench/preview_bench.py [--events-file F] [--rounds 5]

The workload is the peer benchmark's (../shared/peers): its 200k generated events and
its two campaigns in rtm's language, read from peer_rtm.py so they cannot drift. Each
round runs the commands as fresh processes (interpreter start and imports included),
one after the other, so a busy machine slows all alike; only ratios within one run
count: json.loads, preview, and preview with RTM_PURE_PYTHON=1 when the engine is
compiled (rtm.compiled). CPU is the child's user+sys time; the ratio is json.loads time /
preview time.
"""

import argparse
import ast
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rtm import compiled

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT.parent / "shared" / "peers"
JSON_LOOP = "import json, sys\nfor line in open(sys.argv[1], 'rb'):\n    json.loads(line)\n"


def peer_campaigns(peer_rtm: Path) -> dict[str, str]:
    """The CAMPAIGNS literal of peer_rtm.py (file name -> YAML), without importing it."""
    for node in ast.parse(peer_rtm.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "CAMPAIGNS" for t in node.targets):
            return ast.literal_eval(node.value)
    raise SystemExit(f"no CAMPAIGNS in {peer_rtm}")


def ensure_events(events_file: Path, peers: Path) -> None:
    """The peers' 200k events (10k users, seed 42) in `events_file`, generated when missing."""
    if not events_file.exists():
        subprocess.run([sys.executable, peers / "gen_events.py", "--events", "200000", "--users", "10000",
                        "--seed", "42", "--out", events_file], check=True)


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one child process; its output is discarded."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"{cmd[0]} failed: {done.stderr.decode()[-2000:]}")
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events-file", type=Path, default=Path(tempfile.gettempdir()) / "peer_events.jsonl",
                        help="made with the peers' generator (200k events, 10k users, seed 42) when missing")
    parser.add_argument("--peers", type=Path, default=PEERS, help="the peer benchmark's folder")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    ensure_events(args.events_file, args.peers)
    with tempfile.TemporaryDirectory(prefix="preview-bench-") as tmp:
        for name, text in peer_campaigns(args.peers / "peer_rtm.py").items():
            (Path(tmp) / name).write_text(text)
        preview = [str(Path(sys.executable).with_name("rtm")), "campaigns", "preview", "--campaigns", tmp,
                   "--events", str(args.events_file)]
        env = {k: v for k, v in os.environ.items() if k != compiled.PURE_PYTHON_ENV}
        commands = {"json.loads": ([sys.executable, "-c", JSON_LOOP, str(args.events_file)], env),
                    "preview": (preview, env)}
        if compiled.active():
            commands["preview (Python)"] = (preview, {**env, compiled.PURE_PYTHON_ENV: "1"})
        else:
            print(f"the engine is not compiled (stale: {compiled.stale()}): preview runs as Python")
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for round_ in range(1, args.rounds + 1):
            for name, (cmd, cmd_env) in commands.items():
                runs[name].append(timed(cmd, cmd_env))
            (jw, jc) = runs["json.loads"][-1]
            print(f"round {round_}: json.loads {jw:5.2f} s wall {jc:5.2f} s CPU" + "".join(
                f"   {name} {w:5.2f} s wall {c:5.2f} s CPU, ratio {jw / w:.3f} wall {jc / c:.3f} CPU"
                for name, [*_, (w, c)] in runs.items() if name != "json.loads"), flush=True)
    for i, what in enumerate(("wall", "CPU")):
        line = f"median {what}: json.loads {statistics.median(j[i] for j in runs['json.loads']):.2f} s"
        for name, times in runs.items():
            if name != "json.loads":
                ratios = [j[i] / p[i] for j, p in zip(runs["json.loads"], times)]
                line += (f", {name} {statistics.median(p[i] for p in times):.2f} s, "
                         f"ratio {statistics.median(ratios):.3f}")
        print(line)


if __name__ == "__main__":
    main()
