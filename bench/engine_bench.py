"""Micro-benchmark (not a test): events/s through the engine alone, state bytes in and out.

    .venv/bin/python bench/engine_bench.py [--events 30000] [--users 2000]

Campaigns are copies of the shipped ones. "10" is the 8 shipped plus 2 copies; "1000 in
100 type groups" renames the event types of each copy into one of 100 groups, so each
event type is consumed by about 10 campaigns (the index at work); "1000 on the same
types" is the worst case, every copy listening to the shipped event types.
"""

import argparse
import copy
import random
import time
from pathlib import Path

import msgspec
import yaml

from rtm.campaigns import CampaignSet, campaign_files, load_definition
from rtm.engine import apply_event, decode_state, encode_state
from rtm.events import parse_event

ROOT = Path(__file__).resolve().parents[1]
TYPES = {"page_view": 40, "add_to_cart": 10, "checkout": 4, "purchase": 2, "login": 5, "main_screen": 8,
         "chat": 6, "play": 5, "level_up": 20}
GAME = ["login", "main_screen", "chat", "play", "level_up"]
T0 = 1_795_600_000_000


def templates() -> list[dict]:
    return [yaml.safe_load(p.read_text()) for p in campaign_files([ROOT / "campaigns"])]  # not the policy


def renamed(definition: dict, suffix: str) -> dict:
    """A copy whose event types carry `suffix`; "*" becomes the group's game events."""
    d = copy.deepcopy(definition)

    def types(value):
        names = value if isinstance(value, list) else [value]
        out = [n + suffix for n in names if n != "*"] + ([g + suffix for g in GAME] if "*" in names else [])
        return out if isinstance(value, list) or len(out) > 1 else out[0]

    pattern = d["pattern"]
    for item in [*pattern.get("steps", []), *pattern.get("machine", {}).get("transitions", []),
                 *[u for u in pattern.get("unless", []) if isinstance(u, dict)]]:
        item["event"] = types(item["event"])
    pattern["unless"] = [types(u) if isinstance(u, str) else u for u in pattern.get("unless", [])]
    if "absence" in pattern:
        pattern["absence"]["event"] = types(pattern["absence"].get("event", "*"))
    if "emit" in d:
        d["emit"]["event"] += suffix
    return d


def campaign_set(count: int, groups: int) -> CampaignSet:
    base = templates()
    definitions = []
    for i in range(count):
        group = (i // len(base)) % groups
        d = renamed(base[i % len(base)], f"_g{group}") if groups > 1 else copy.deepcopy(base[i % len(base)])
        if i >= len(base):
            d["id"] = f"{d['id']}_{i}"
            if "emit" in d:  # keep each emit/listener pair distinct per copy
                d["emit"]["event"] += f"_{i}"
        definitions.append(load_definition(d))
    return CampaignSet(definitions)


def events(n: int, users: int, groups: int, seed: int = 7) -> list:
    rnd = random.Random(seed)
    names, weights = list(TYPES), list(TYPES.values())
    out, ts = [], T0
    for i in range(n):
        ts += rnd.randint(0, 400)
        etype = rnd.choices(names, weights)[0]
        suffix = f"_g{rnd.randrange(groups)}" if groups > 1 else ""
        raw = {"event_id": f"e{i}", "type": etype + suffix, "ts": ts, "user_id": f"u{rnd.randrange(users)}",
               "params": {"page": "landing" if rnd.random() < 0.05 else "home", "section": rnd.choice(["", "hats"]),
                          "cart_items": rnd.randint(1, 6), "sku": f"sku-{rnd.randrange(100)}", "game": "chess"},
               "context": {"app": "game" if etype in GAME else "web", "platform": "ios"}}
        out.append(parse_event(msgspec.json.encode(raw)))
    return out


def measure(label: str, campaigns: CampaignSet, stream: list, profiles: dict) -> None:
    states: dict[str, bytes] = {}
    triggers = 0
    # CPU time, not wall time: on a shared 2-core machine it is the figure that repeats.
    start = time.process_time()
    for e in stream:  # the state decoded and encoded around each call, as the job does around a batch
        result = apply_event(decode_state(states.get(e.key)), e, campaigns, profiles.get(e.key))
        if result.user is None:
            states.pop(e.key, None)
        else:
            states[e.key] = encode_state(result.user)
        triggers += len(result.triggers)
    elapsed = time.process_time() - start
    sizes = sorted(len(s) for s in states.values())
    print(f"{label:<34} {len(stream) / elapsed:>9,.0f} events/s  {elapsed / len(stream) * 1e6:6.0f} us/event  "
          f"{triggers:>6} triggers  state bytes median {sizes[len(sizes) // 2]}, max {sizes[-1]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--users", type=int, default=2_000)
    args = parser.parse_args()
    profiles = {f"u{i}": {"user_id": f"u{i}", "segments": ["vip"] if i % 5 == 0 else [],
                          "attributes": {"recommendations": ["sku-1"]}} for i in range(args.users)}
    print(f"{args.events:,} events, {args.users:,} users, one apply_event each (state decoded and encoded per event), "
          "per CPU second")
    for label, count, groups in [("10 campaigns", 10, 1), ("1000 campaigns in 100 type groups", 1000, 100),
                                 ("1000 campaigns on the same types", 1000, 1)]:
        measure(label, campaign_set(count, groups), events(args.events, args.users, groups), profiles)


if __name__ == "__main__":
    main()
