"""The decisions API's logic, apart from HTTP: keep the pending triggers of pull
channels (a page or app fetches them: pop-ups) per user key, and hand each out once.

`TriggerFeed` reads rtm.triggers (read_committed) and writes into `MessageStore`:

1. a record that is not a trigger (rtm.records.Trigger) is counted and logged (the
   `rtm deliver` of another channel dead-letters it), never served;
2. a trigger of a push channel (email, webhook, ...) is left to `rtm deliver`;
3. a holdout (control group) trigger is never stored, so never served;
4. a trigger older than its channel's TTL (by `emitted_at`) is dropped, and a stored
   one stops being served once its TTL has passed;
5. the same trigger id is stored once: a repeat (at-least-once delivery, a replay) of
   an id that is pending or was shown changes nothing.

A stored trigger is handed out once: `take` (a fetch, or a push on a stream) and
`mark_shown` (an acknowledgement) both mark it shown in the same statement that
checks it was pending, so two tabs, two requests or a restart never show it twice.
It is marked before it is written to the client: a client that vanishes mid-answer
loses that pop-up rather than seeing it twice.

Why SQLite: it is in Python's standard library (no service to run next to the API),
one file that survives a restart, and transactions make "these triggers are stored"
and "the topic was read up to here" one atomic step, so a restart neither loses nor
repeats a trigger. WAL lets the Kafka thread write while the API reads; with
`synchronous=NORMAL` a committed write survives a crash of the process (a power cut
may lose the last transactions, which Kafka still holds: they are read again). A
lookup by user key is one index probe: 100k users stored cost nothing noticeable.
"""

import logging
import sqlite3
import threading
import time
from collections import Counter
from contextlib import contextmanager
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
import msgspec
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from rtm import kafka_config
from rtm.errors import RtmError
from rtm.records import Trigger

log = logging.getLogger(__name__)

PULL_CHANNELS = ("popup",)
DEFAULT_TTL_S = {"popup": 30 * 60}


_decoder = msgspec.json.Decoder(Trigger)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class MessageStore:
    """Pending and shown pull-channel triggers per user key, with the topic offsets read.

    One instance per thread (a SQLite connection is not shared); several over one file
    see each other's commits.
    """

    def __init__(self, path: Path):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript("""
                CREATE TABLE IF NOT EXISTS messages (
                    trigger_id TEXT PRIMARY KEY, user_key TEXT NOT NULL, channel TEXT NOT NULL,
                    emitted_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, shown_at INTEGER,
                    trigger BLOB NOT NULL);
                CREATE INDEX IF NOT EXISTS pending ON messages (user_key, channel) WHERE shown_at IS NULL;
                CREATE INDEX IF NOT EXISTS expiry ON messages (expires_at);
                CREATE TABLE IF NOT EXISTS offsets (
                    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
                    PRIMARY KEY (topic, partition));
            """)
        except (OSError, sqlite3.Error) as err:
            raise RtmError(f"cannot use {path} as the decisions store: {err}; pass another file with --store") from err
        self.path = path

    def offsets(self, topic: str) -> dict[int, int]:
        """The next offset to read per partition of `topic`."""
        rows = self._db.execute("SELECT partition, next_offset FROM offsets WHERE topic = ?", (topic,))
        return dict(rows.fetchall())

    def add(self, rows: Sequence[tuple[str, str, str, int, int, bytes]], topic: str,
            next_offsets: dict[int, int]) -> list[str]:
        """Store (trigger_id, user_key, channel, emitted_at, expires_at, trigger) rows and
        the offsets read, in one transaction; returns the user keys that got a new message."""
        added = []
        with self._transaction():
            for row in rows:
                if self._db.execute("INSERT OR IGNORE INTO messages VALUES (?, ?, ?, ?, ?, NULL, ?)",
                                    row).rowcount:
                    added.append(row[1])
            self._db.executemany("INSERT OR REPLACE INTO offsets VALUES (?, ?, ?)",
                                 [(topic, partition, offset) for partition, offset in next_offsets.items()])
        return added

    def take(self, user_key: str, channels: Sequence[str], now: int) -> list[bytes]:
        """The user's pending, unexpired messages in the order they arrived, marked shown."""
        marks = ",".join("?" * len(channels))
        # A read first: most calls find nothing and need no write lock.
        found = self._db.execute(
            f"SELECT trigger_id FROM messages WHERE user_key = ? AND channel IN ({marks}) "
            "AND shown_at IS NULL AND expires_at > ?", (user_key, *channels, now)).fetchall()
        if not found:
            return []
        taken = self._db.execute(
            f"UPDATE messages SET shown_at = ? WHERE user_key = ? AND channel IN ({marks}) "
            "AND shown_at IS NULL AND expires_at > ? RETURNING rowid, trigger",
            (now, user_key, *channels, now)).fetchall()
        return [trigger for _, trigger in sorted(taken)]

    def peek(self, user_key: str, channels: Sequence[str], now: int) -> list[bytes]:
        """The user's pending, unexpired messages in the order they arrived, left pending."""
        marks = ",".join("?" * len(channels))
        return [row[0] for row in self._db.execute(
            f"SELECT trigger FROM messages WHERE user_key = ? AND channel IN ({marks}) "
            "AND shown_at IS NULL AND expires_at > ? ORDER BY rowid",
            (user_key, *channels, now))]

    def mark_shown(self, trigger_id: str, now: int) -> str:
        """'shown' if it was pending and is now marked, 'already shown', or 'unknown'
        (never stored, or expired)."""
        if self._db.execute("UPDATE messages SET shown_at = ? WHERE trigger_id = ? AND shown_at IS NULL "
                            "AND expires_at > ?", (now, trigger_id, now)).rowcount:
            return "shown"
        row = self._db.execute("SELECT shown_at FROM messages WHERE trigger_id = ? AND expires_at > ?",
                               (trigger_id, now)).fetchone()
        return "unknown" if row is None else "already shown"

    def prune(self, now: int) -> int:
        """Forget messages past their TTL, shown or not: a repeat of one read later is
        past its TTL too, so it is dropped, not stored again."""
        return self._db.execute("DELETE FROM messages WHERE expires_at <= ?", (now,)).rowcount

    def pending_count(self) -> int:
        return self._db.execute("SELECT count(*) FROM messages WHERE shown_at IS NULL").fetchone()[0]

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self):
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


class TriggerFeed:
    """Reads the triggers topic into the store on its own thread (steps 1-5 above) and
    calls `on_stored(user_keys)` and `on_trigger(raw)` for each batch, from that thread."""

    def __init__(self, bootstrap: str, topic: str, store_path: Path, *, channels: Sequence[str],
                 ttl_ms: dict[str, int], on_stored: Callable[[list[str]], None],
                 on_trigger: Callable[[list[bytes]], None] | None = None):
        self.bootstrap, self.topic, self.store_path = bootstrap, topic, store_path
        self.channels, self.ttl_ms = tuple(channels), ttl_ms
        self.on_stored, self.on_trigger = on_stored, on_trigger
        self.counts: Counter[str] = Counter()
        self.ready = threading.Event()  # set once the partitions are assigned
        self.error: Exception | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="decisions-trigger-feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            self._read()
        except Exception as err:  # noqa: BLE001 - the API reports it on /healthz and in the log
            log.exception("reading %s failed", self.topic)
            self.error = err

    def _read(self) -> None:
        self.store = MessageStore(self.store_path)  # this thread's own connection
        consumer = Consumer(kafka_config.librdkafka({"bootstrap.servers": self.bootstrap, "group.id": "rtm-serve",
                                                     "enable.auto.commit": False, "isolation.level": "read_committed",
                                                     "fetch.wait.max.ms": 100}))
        try:
            metadata = consumer.list_topics(self.topic, timeout=10).topics[self.topic]
            if metadata.error is not None:
                raise RtmError(f"cannot read {self.topic} at {self.bootstrap}: {metadata.error.str()}")
            stored = self.store.offsets(self.topic)
            # The offsets live in the store, next to the triggers they produced: no group join.
            consumer.assign([TopicPartition(self.topic, p, stored.get(p, OFFSET_BEGINNING))
                             for p in sorted(metadata.partitions)])
            self.ready.set()
            last_prune = 0.0
            while not self._stop.is_set():
                # consume() waits for its whole batch or the timeout: wait for one record
                # only, then take what else has arrived, so a trigger is never held back.
                first = consumer.poll(0.05)
                if first is not None:
                    self._handle([first, *consumer.consume(499, timeout=0)])
                if time.monotonic() - last_prune > 60:
                    self.counts["pruned"] += self.store.prune(now_ms())
                    last_prune = time.monotonic()
        finally:
            consumer.close()
            self.store.close()

    def _handle(self, messages: Iterable[Message]) -> None:
        rows, raws, next_offsets = [], [], {}
        now = now_ms()
        for message in messages:
            if message.error() is not None:
                raise RtmError(f"reading {self.topic} at {self.bootstrap} failed: {message.error().str()}")
            next_offsets[message.partition()] = message.offset() + 1
            value = message.value()
            outcome = self._classify(message, value, now, rows)
            if outcome is not None:
                self.counts[outcome] += 1
            if value is not None and outcome != "invalid":
                raws.append(value)
        added = self.store.add(rows, self.topic, next_offsets)
        self.counts["duplicate"] += len(rows) - len(added)
        self.counts["stored"] += len(added)
        if added:
            self.on_stored(added)
        if raws and self.on_trigger is not None:
            self.on_trigger(raws)

    def _classify(self, message: Message, value: bytes | None, now: int, rows: list) -> str | None:
        """Why the record is not stored, or None after adding its row to `rows`."""
        where = f"{message.topic()}[{message.partition()}]@{message.offset()}"
        try:
            trigger = _decoder.decode(value) if value is not None else None
        except msgspec.DecodeError as err:
            log.warning("%s is not a trigger, not served: %s", where, err)
            return "invalid"
        if trigger is None:
            log.warning("%s is a tombstone, not a trigger: not served", where)
            return "invalid"
        if trigger.channel not in self.channels:
            return "other_channel"
        if trigger.holdout:
            return "holdout"
        key = trigger.user_key
        emitted_at = trigger.emitted_at or trigger.event_time  # a backtest's trigger has no emitted_at
        expires_at = emitted_at + self.ttl_ms[trigger.channel]
        if expires_at <= now:
            return "expired"
        rows.append((trigger.trigger_id, key, trigger.channel, emitted_at, expires_at, value))
        return None
