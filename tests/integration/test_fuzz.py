"""Bad records mixed with good ones through the real job (issue 15, "no record can stop the job").

Hypothesis draws good traffic (rtm.generator) and records of every kind of bad in KINDS,
interleaved at random, EXAMPLES times onto one real topic (a job run per example would
take minutes); one bounded run of the campaign job on a MiniCluster reads them all with
restarts switched off, so a record that failed a task would fail the run. Every bad record must be in the DLQ with a reason naming what was wrong;
the triggers must be preview's over the same lines. Run with -s to see the kinds and counts.
"""

import itertools
import json
import shutil
import time
from collections import Counter
from dataclasses import dataclass

import hypothesis.strategies as st
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, given, settings

import scenarios
from jobs import campaign_job, startup
from jobs.environment import local_environment
from job_helpers import fresh_topics, read_json
from kafka_helpers import produce
from rtm import generator
from rtm.cli import main
from rtm.events import MAX_EVENT_BYTES
from rtm.expressions import MAX_RENDERED_CHARS
from rtm.settings import CAMPAIGNS_DIR
from rtm.time_rules import TimeRules

# A campaign that puts an event's text in its message: a long text renders past the limit.
ECHO = """id: echo
version: 1
pattern:
  steps:
    - event: note
action:
  channel: push
  endpoint: app
  message: "{{ event.params.text }}"
"""
HOUR = 3_600_000
_NOTE_IDS = itertools.count()
# Each drawn example's good traffic starts this long after the one before (an example spans
# a few minutes): all examples go onto one topic, and overlapping ones would send a user's
# events behind a watermark that other users' events already moved past that user's
# deadlines, where the job's timers and preview's per-user settling may disagree by design
# (docs/CONTRACTS.md, "Time"). Under --max-future (1 h), so over files no example is refused
# as being from the future.
EXAMPLE_SPACING_MS = 20 * 60_000
_EXAMPLE_STARTS = itertools.count()


@dataclass(frozen=True)
class Kind:
    """A kind of bad record: how to draw one (the value bytes, None for a tombstone) and
    what its dead letter's reason must say."""

    name: str
    reason: str
    draw: st.SearchStrategy


def _event(**fields) -> dict:
    return {"event_id": "bad", "type": "page_view", "ts": scenarios.T0, "user_id": "fuzzed", **fields}


def _json(strategy) -> st.SearchStrategy:
    return strategy.map(lambda value: json.dumps(value).encode())


_ids = st.text("abcdefghij0123456789-", min_size=1, max_size=12)
_no_newline = st.binary(max_size=40).map(lambda b: b.replace(b"\n", b" ").replace(b"\r", b" "))

KINDS = [
    # Refused in the JVM, before keying (io.rtm.flink.Inputs).
    Kind("not JSON", "not JSON", _no_newline.map(lambda b: b"{not json " + b)),
    Kind("truncated JSON", "not JSON", st.integers(1, 60).map(
        lambda cut: json.dumps(_event(params={"page": "p" * 60})).encode()[:-cut])),
    Kind("invalid UTF-8", "not JSON", _no_newline.map(lambda b: b'{"event_id": "\xff\xfe' + b + b'"}')),
    Kind("trailing data", "not JSON", st.text("xyz!#", min_size=1, max_size=8).map(
        lambda junk: json.dumps(_event()).encode() + b" " + junk.encode())),
    Kind("not an object", "an event is a JSON object", _json(st.one_of(
        st.lists(st.integers(), max_size=3), st.integers(), st.text("abc", max_size=5), st.booleans()))),
    Kind("tombstone", "tombstone", st.just(None)),
    Kind("no user key", "neither user_id nor anonymous_id", _json(_ids.map(
        lambda i: {k: v for k, v in _event(event_id=i).items() if k != "user_id"}))),
    Kind("empty user keys", "neither user_id nor anonymous_id", _json(_ids.map(
        lambda i: _event(event_id=i, user_id="", anonymous_id="")))),
    Kind("user key not a string", "neither user_id nor anonymous_id", _json(st.integers().map(
        lambda n: _event(user_id=n)))),
    Kind("repeated user_id", "Duplicate field 'user_id'", _ids.map(
        lambda other: b'{"event_id": "d", "type": "a", "ts": 1795600000000, "user_id": "a", "user_id": "'
        + other.encode() + b'"}')),
    Kind("ts from the future", "--max-future", _json(st.integers(2 * HOUR, 365 * 24 * HOUR).map(
        lambda ahead: _event(ts=int(time.time() * 1000) + ahead)))),
    # Refused by the engine's parse (rtm.events).
    Kind("no event_id", "event_id", _json(st.just(
        {k: v for k, v in _event().items() if k != "event_id"}))),
    Kind("empty event_id", "event_id is empty", _json(st.just(_event(event_id="")))),
    Kind("event_id not a string", "event_id", _json(st.integers().map(lambda n: _event(event_id=n)))),
    Kind("empty type", "type is empty", _json(st.just(_event(type="")))),
    Kind("no ts", "ts", _json(st.just({k: v for k, v in _event().items() if k != "ts"}))),
    Kind("ts not a time", "is not ISO-8601", _json(st.text("abcxyz", min_size=1, max_size=9).map(
        lambda text: _event(ts=text)))),
    Kind("ts without an offset", "has no UTC offset", _json(st.just(_event(ts="2026-11-25T10:00:00")))),
    Kind("ts in seconds", "epoch seconds", _json(st.integers(0, 99_999_999_999).map(lambda s: _event(ts=s)))),
    Kind("ts past 64 bits", "after the year 9999", _json(st.integers(2**64, 10**40).map(lambda big: _event(ts=big)))),
    Kind("ts a boolean", "does not match the contract", _json(st.booleans().map(lambda b: _event(ts=b)))),
    Kind("params not an object", "does not match the contract", _json(st.lists(st.integers(), max_size=3).map(
        lambda items: _event(params=items)))),
    Kind("too large", "event too large", st.integers(MAX_EVENT_BYTES, 2 * MAX_EVENT_BYTES).map(
        lambda size: json.dumps(_event(params={"blob": "x" * size})).encode())),
    # Refused by the JVM's parser or the engine's, whichever limits nesting first.
    Kind("nested too deep", "nest", st.integers(2_000, 9_000).map(
        lambda depth: json.dumps(_event()).encode()[:-1] + b', "params": ' + b'{"a": ' * depth + b"1"
        + b"}" * (depth + 1))),
    # Applied, but its message renders past the limit: a condition error and a dead letter.
    # (Ids from a counter: Hypothesis may draw one twice, and the second would be a duplicate.)
    Kind("message past the size limit", "RenderedTooLarge", st.integers(MAX_RENDERED_CHARS + 1, 60_000).map(
        lambda size: json.dumps(_event(event_id=f"note-{next(_NOTE_IDS)}", type="note",
                                       params={"text": "t" * size})).encode())),
]


@st.composite
def traffic(draw):
    """(kind name or None for a good event, value bytes) in the order they are produced."""
    start_ms = scenarios.T0 + next(_EXAMPLE_STARTS) * EXAMPLE_SPACING_MS
    good = [(None, json.dumps(e).encode()) for e in generator.generate(
        draw(st.integers(20, 40)), seed=draw(st.integers(0, 2**16)), start_ms=start_ms)]
    good.append((None, json.dumps({"event_id": "short-note", "type": "note", "ts": scenarios.T0 + 1,
                                   "user_id": "noter", "params": {"text": "hello"}}).encode()))
    bad = [(kind.name, draw(kind.draw)) for kind in KINDS for _ in range(draw(st.integers(2, 4)))]
    records = list(good)
    for record in draw(st.permutations(bad)):
        # After the first good event: over files, an event from the future is one ahead of
        # the events before it.
        records.insert(draw(st.integers(1, len(records))), record)
    return records


EXAMPLES = 12  # drawn by Hypothesis, one after the other onto one topic: one job run for all


def _draw(examples: int) -> list[tuple[str | None, bytes | None]]:
    """The records of `examples` examples of `traffic`, one after the other."""
    records = []

    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(traffic())
    def collect(example):
        records.extend(example)

    collect()
    return records


def test_every_bad_record_of_every_kind_is_dead_lettered_with_its_reason_and_good_ones_fire_as_in_preview(
    kafka_bootstrap, new_topic, tmp_path
):
    records = _draw(EXAMPLES)
    campaigns = tmp_path / "campaigns"
    shutil.copytree(CAMPAIGNS_DIR, campaigns)
    (campaigns / "echo.yaml").write_text(ECHO)
    events_file = tmp_path / "events.jsonl"
    events_file.write_bytes(b"".join(value + b"\n" for _, value in records if value is not None))

    preview = CliRunner().invoke(main, ["campaigns", "preview", "--campaigns", str(campaigns),
                                        "--events", str(events_file)])
    assert preview.exit_code == 0, preview.output
    expected = [json.loads(line) for line in preview.stdout.splitlines()]

    topics = fresh_topics(new_topic)
    produce(kafka_bootstrap, topics.events, [(None, value) for _, value in records])
    # Restarts off: a record that failed a task would fail the run instead of being retried.
    campaign_job.run(local_environment({"restart-strategy.type": "none"}), kafka_bootstrap,
                     startup.definitions(startup.folder_campaigns(campaigns)), TimeRules(live=False), topics=topics,
                     bounded=True)

    bad = {offset: kind for offset, (kind, _) in enumerate(records) if kind is not None}
    letters = read_json(kafka_bootstrap, topics.dlq, expected=len(bad) + 1, timeout_s=10)
    missing = Counter(bad[offset] for offset in set(bad) - {letter["offset"] for letter in letters})
    assert not missing, f"not dead-lettered: {missing}"
    assert sorted(letter["offset"] for letter in letters) == sorted(bad)
    for letter in letters:
        kind = next(k for k in KINDS if k.name == bad[letter["offset"]])
        assert kind.reason in letter["reason"], (kind.name, letter["reason"])
    triggers = read_json(kafka_bootstrap, topics.triggers, expected=len(expected) + 1, timeout_s=10)

    def comparable(found):
        return sorted(json.dumps({**t, "emitted_at": None}, sort_keys=True) for t in found)

    assert expected and comparable(triggers) == comparable(expected)
    counts = Counter(bad.values())
    assert set(counts) == {k.name for k in KINDS} and len(counts) >= 20
    print(f"\n{len(records) - len(bad)} good events, {len(bad)} bad records of {len(counts)} kinds, "
          f"{len(triggers)} triggers as in preview:")
    for kind in KINDS:
        print(f"  {counts[kind.name]} x {kind.name}: {kind.reason!r}")
