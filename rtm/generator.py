"""Synthetic traffic: users browsing a shop and playing a game, as events of docs/CONTRACTS.md.

Deterministic for a seed, so demos and benchmarks replay the same traffic. Each user
runs a short visit: the landing page, page views in store sections, sometimes a cart,
a checkout and a purchase, or a game session (login, main screen, chat, play). Known
users get profiles; some are VIPs with recommendations.
"""

import random
from collections.abc import Iterator

SECTIONS = ("shoes", "jackets", "bags", "watches", "sale")
PLATFORMS = ("web", "ios", "android")
GAMES = ("space-race", "tiny-farm")


def _shop_visit(rng: random.Random) -> list[tuple[str, dict]]:
    steps = [("page_view", {"page": "landing"})]
    for _ in range(rng.randint(1, 4)):
        section = rng.choice(SECTIONS)
        steps.append(("page_view", {"page": f"store/{section}", "section": section}))
    if rng.random() < 0.5:
        items = rng.randint(1, 5)
        for i in range(items):
            sku = f"sku-{rng.randint(1, 200)}"
            steps.append(("add_to_cart", {"sku": sku, "name": f"item {sku}", "price": rng.randint(5, 300), "cart_items": i + 1}))
        if rng.random() < 0.6:
            steps.append(("checkout", {"cart_items": items}))
            if rng.random() < 0.7:
                steps.append(("purchase", {"cart_items": items, "amount": rng.randint(20, 900)}))
    return steps


def _game_session(rng: random.Random) -> list[tuple[str, dict]]:
    game = {"game": rng.choice(GAMES)}
    steps = [("login", game), ("main_screen", game)]
    for _ in range(rng.randint(0, 3)):
        steps += [("chat", game), ("main_screen", game)]
    if rng.random() < 0.7:
        steps.append(("play", {**game, "level": rng.randint(1, 40)}))
    return steps


def generate(users: int = 100, *, seed: int = 7, start_ms: int = 1_790_000_000_000, gap_ms: int = 15_000,
             spread_ms: int = 60_000) -> Iterator[dict]:
    """Events of `users` visitors, in event-time order: each starts within `spread_ms`
    of `start_ms`, and a visitor's events are `gap_ms` apart."""
    rng = random.Random(seed)
    steps = []
    for n in range(users):
        who = {"user_id": f"user-{n}"} if rng.random() < 0.6 else {"anonymous_id": f"device-{n}"}
        in_game = rng.random() < 0.3
        visit = _game_session(rng) if in_game else _shop_visit(rng)
        context = {"platform": rng.choice(PLATFORMS), "app": "game" if in_game else "shop"}
        offset = rng.randint(0, spread_ms)
        steps += [(start_ms + offset + i * gap_ms, n, i, who, kind, params, context) for i, (kind, params) in enumerate(visit)]
    for ts, n, i, who, kind, params, context in sorted(steps, key=lambda step: step[:3]):
        yield {"event_id": f"ev-{seed}-{n}-{i}", "type": kind, "ts": ts, **who, "params": params, "context": context}


def profiles(users: int = 100, *, seed: int = 7, vip_share: float = 0.3) -> Iterator[dict]:
    """Profiles of the known users among `users` (same seed as `generate`)."""
    rng = random.Random(seed * 7919)
    for n in range(users):
        segments = ["vip"] if rng.random() < vip_share else []
        yield {
            "user_id": f"user-{n}",
            "segments": segments,
            "attributes": {
                "first_name": rng.choice(("Tom", "Ana", "Kai", "Mia", "Lev")),
                "ltv": rng.randint(0, 3000),
                "recommendations": [f"sku-{rng.randint(1, 200)}" for _ in range(3)],
            },
        }
