"""JSON for the collector: msgspec (what rtm.events already uses) against orjson, on the
collector's per-event work. Prints microseconds per call.

    .venv/bin/python bench/json_bench.py
"""

import time

import msgspec
import orjson

from rtm.collector import accept
from rtm.events import parse_event

EVENT = {"event_id": "e-123456", "type": "page_view", "ts": 1796000000000, "anonymous_id": "a-42", "user_id": None,
         "params": {"page": "landing", "section": "shoes", "sku": "sku-1", "price": 19.9},
         "context": {"platform": "web", "os": "linux", "country": "DE"}}
RAW = orjson.dumps(EVENT)
BATCH = orjson.dumps([EVENT] * 100)


def micros(call, rounds=20_000) -> float:
    started = time.perf_counter()
    for _ in range(rounds):
        call()
    return (time.perf_counter() - started) / rounds * 1e6


def main() -> None:
    event = parse_event(RAW)
    as_dict = msgspec.structs.asdict(event)
    raw_items = msgspec.json.Decoder(list[msgspec.Raw])
    rows = [
        ("decode + validate: rtm.events.parse_event (msgspec, typed)", lambda: parse_event(RAW)),
        ("decode only: orjson.loads (no contract checked)", lambda: orjson.loads(RAW)),
        ("decode only: msgspec.json.decode (untyped)", lambda: msgspec.json.decode(RAW)),
        ("encode the parsed event: msgspec.json.encode(Event)", lambda: msgspec.json.encode(event)),
        ("encode the parsed event: orjson.dumps(asdict(Event))",
         lambda: orjson.dumps(msgspec.structs.asdict(event))),
        ("encode a dict: orjson.dumps", lambda: orjson.dumps(as_dict)),
        ("the collector's whole per-event step: rtm.collector.accept", lambda: accept(RAW, 1)),
        ("split a JSON array of 100 into raw items: msgspec Raw", lambda: raw_items.decode(BATCH)),
        ("split a JSON array of 100: orjson.loads (then re-encode each)", lambda: orjson.loads(BATCH)),
    ]
    for name, call in rows:
        print(f"{micros(call, 2_000 if 'array' in name else 20_000):8.2f} us  {name}")


if __name__ == "__main__":
    main()
