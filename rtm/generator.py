"""Synthetic traffic: users browsing a shop and playing a game, as DESIGN.md events.

Deterministic for a seed, so demos and benchmarks replay the same traffic. Each user
runs a short visit: landing, page views in store sections, sometimes a cart, a
checkout and a purchase, or a game session (login, main screen, chat, play).
"""

import random
from collections.abc import Iterator

SECTIONS = ("shoes", "jackets", "bags", "watches", "sale")
PLATFORMS = ("web", "ios", "android")


def _shop_visit(rng: random.Random) -> list[tuple[str, dict]]:
    steps = [("page_view", {"page": "/landing"})]
    for _ in range(rng.randint(1, 4)):
        steps.append(("page_view", {"page": f"/store/{rng.choice(SECTIONS)}", "section": rng.choice(SECTIONS)}))
    if rng.random() < 0.5:
        items = rng.randint(1, 5)
        for i in range(items):
            steps.append(("add_to_cart", {"sku": f"sku-{rng.randint(1, 200)}", "price": rng.randint(5, 300), "cart_items": i + 1}))
        if rng.random() < 0.6:
            steps.append(("checkout", {"cart_items": items}))
            if rng.random() < 0.7:
                steps.append(("purchase", {"cart_items": items, "amount": rng.randint(20, 900)}))
    return steps


def _game_session(rng: random.Random) -> list[tuple[str, dict]]:
    steps = [("login", {}), ("main_screen", {})]
    for _ in range(rng.randint(0, 3)):
        steps += [("chat", {}), ("main_screen", {})]
    if rng.random() < 0.7:
        steps.append(("play", {"level": rng.randint(1, 40)}))
    return steps


def generate(users: int = 100, *, seed: int = 7, start_ms: int = 1_790_000_000_000, gap_ms: int = 15_000) -> Iterator[dict]:
    """Events of `users` visitors, in event-time order, `gap_ms` apart per user."""
    rng = random.Random(seed)
    streams = []
    for n in range(users):
        known = rng.random() < 0.6
        who = {"user_id": f"user-{n}"} if known else {"anonymous_id": f"device-{n}"}
        steps = _game_session(rng) if rng.random() < 0.3 else _shop_visit(rng)
        offset = rng.randint(0, 60_000)
        context = {"platform": rng.choice(PLATFORMS)}
        streams.append([(start_ms + offset + i * gap_ms, n, i, who, kind, params, context)
                        for i, (kind, params) in enumerate(steps)])
    for ts, n, i, who, kind, params, context in sorted(step for stream in streams for step in stream):
        yield {"event_id": f"ev-{seed}-{n}-{i}", "type": kind, "ts": ts, **who, "params": params, "context": context}
