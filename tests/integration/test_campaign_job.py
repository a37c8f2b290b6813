"""The campaign job on real Kafka and a real MiniCluster (issue: the campaign job)."""

import base64
import json
import time
from collections import Counter

import msgspec
from click.testing import CliRunner

import scenarios
from rtm import generator, kafka_clients
from rtm.arbitration import POLICY_KEY
from job_helpers import fresh_topics, live_job, read_json, run_bounded, wait_for
from kafka_helpers import consume_all, produce
from rtm.campaigns import CampaignSet
from rtm.cli import main
from rtm.engine import EngineConfig
from rtm.events import parse_event
from rtm.preview import run_preview
from rtm.time_rules import TimeRules

LAST_TS = scenarios.events()[-1]["ts"]


def _produce_scenarios(bootstrap, topics):
    """Profiles, then events without a message key and with Kafka timestamps that run
    backwards, a day after their `ts` (a replay: a `ts` ahead of its record's timestamp is
    refused, --max-future): the job must go by the payload alone."""
    produce(bootstrap, topics.profiles, [(p["user_id"].encode(), json.dumps(p).encode()) for p in scenarios.PROFILES])
    events = scenarios.events()
    produce(bootstrap, topics.events, [(None, json.dumps(e).encode(), events[-1 - i]["ts"] + 24 * scenarios.HOUR)
                                       for i, e in enumerate(events)])


def test_every_reference_scenario_fires_exactly_its_triggers_by_payload_time_not_kafka_time(
    kafka_bootstrap, new_topic
):
    topics = fresh_topics(new_topic)
    _produce_scenarios(kafka_bootstrap, topics)

    run_bounded(kafka_bootstrap, topics, until=LAST_TS)

    triggers = read_json(kafka_bootstrap, topics.triggers, expected=len(scenarios.EXPECTED) + 1, timeout_s=10)
    assert scenarios.summary(triggers) == sorted(scenarios.EXPECTED)
    assert {t["user_key"] for t in triggers if t["holdout"]} == scenarios.HOLDOUT_USERS
    assert all(isinstance(t["emitted_at"], int) for t in triggers)
    suppressed = read_json(kafka_bootstrap, topics.suppressed, expected=len(scenarios.SUPPRESSED) + 1, timeout_s=5)
    assert scenarios.suppressed_summary(suppressed) == sorted(scenarios.SUPPRESSED)
    # Triggers are keyed by user key.
    keys = {m.key().decode() for m in consume_all(kafka_bootstrap, topics.triggers, expected=len(triggers))}
    assert keys == {t["user_key"] for t in triggers}


def test_backtest_bounded_run_and_preview_give_the_same_triggers_and_backtest_repeats_exactly(
    kafka_bootstrap, new_topic, tmp_path
):
    events_file, profiles_file = tmp_path / "events.jsonl", tmp_path / "profiles.jsonl"
    events = sorted([*scenarios.events(), *generator.generate(60, start_ms=scenarios.T0)], key=lambda e: e["ts"])
    # A clock gone wrong, mid-file: refused by all three (over files: further ahead than
    # --max-future of the largest event time before it; on Kafka: of its record's timestamp).
    skewed = {"event_id": "skewed", "type": "page_view", "ts": 4_102_444_800_000, "user_id": "u-skewed"}
    events.insert(len(events) // 2, skewed)
    events_file.write_bytes(scenarios.jsonl(events))
    profiles_file.write_bytes(scenarios.jsonl([*scenarios.PROFILES, *generator.profiles(60)]))
    # The last scenario event carries event time 5 h on: a quiet span beyond the default 1 h.
    files = ["--events", str(events_file), "--profiles", str(profiles_file), "--max-future", "6h"]

    preview_suppressed_file = tmp_path / "suppressed.jsonl"
    preview = CliRunner().invoke(main, ["campaigns", "preview", "--campaigns", "campaigns", *files,
                                        "--suppressed", str(preview_suppressed_file)])
    assert preview.exit_code == 0, preview.output
    preview_triggers = [json.loads(line) for line in preview.stdout.splitlines()]
    preview_suppressed = [json.loads(line) for line in preview_suppressed_file.read_text().splitlines()]

    [refused] = [line for line in preview.stderr.splitlines() if "--max-future" in line]
    assert refused.startswith(f"{events_file}:{events.index(skewed) + 1}: ts {skewed['ts']} is ")

    backtests = []
    for run in range(3):
        out_dir = tmp_path / f"backtest-{run}"
        result = CliRunner().invoke(main, ["backtest", *files, "--out-dir", str(out_dir)])
        assert result.exit_code == 0, result.output
        backtests.append({name: (out_dir / f"{name}.jsonl").read_bytes()
                          for name in ("triggers", "suppressed", "sessions", "dlq", "late")})
    assert backtests[0] == backtests[1] == backtests[2]

    topics = fresh_topics(new_topic)
    produce(kafka_bootstrap, topics.profiles, [(p["user_id"].encode(), json.dumps(p).encode())
                                               for p in [*scenarios.PROFILES, *generator.profiles(60)]])
    produce(kafka_bootstrap, topics.events, [(None, json.dumps(e).encode()) for e in events])
    run_bounded(kafka_bootstrap, topics, until=max(e["ts"] for e in events if e is not skewed))
    bounded_triggers = read_json(kafka_bootstrap, topics.triggers, expected=len(preview_triggers) + 1, timeout_s=10)
    bounded_suppressed = read_json(kafka_bootstrap, topics.suppressed, expected=len(preview_suppressed) + 1,
                                   timeout_s=5)

    def comparable(triggers):
        return sorted(json.dumps({**t, "emitted_at": None}, sort_keys=True) for t in triggers)

    backtest_triggers = [json.loads(line) for line in backtests[0]["triggers"].splitlines()]
    assert len(preview_triggers) > len(scenarios.EXPECTED)
    assert comparable(backtest_triggers) == comparable(preview_triggers) == comparable(bounded_triggers)
    backtest_suppressed = [json.loads(line) for line in backtests[0]["suppressed"].splitlines()]
    assert len(preview_suppressed) > len(scenarios.SUPPRESSED)  # the policy holds back generated traffic too
    assert comparable(backtest_suppressed) == comparable(preview_suppressed) == comparable(bounded_suppressed)
    [letter] = [json.loads(line) for line in backtests[0]["dlq"].splitlines()]
    assert refused == f"{letter['topic']}:{letter['offset']}: {letter['reason']}"  # the same words, file and line
    [letter] = read_json(kafka_bootstrap, topics.dlq, expected=2, timeout_s=5)
    assert letter["reason"].startswith(f"ts {skewed['ts']} is ") and "Kafka timestamp" in letter["reason"]


def test_bad_records_land_in_the_dlq_with_reasons_while_good_events_flow(kafka_bootstrap, new_topic):
    topics = fresh_topics(new_topic)
    good = scenarios.events()
    bad = [
        (b"k", b"{not json"),
        (b"k", b'{"type": "page_view", "ts": 1795600000000, "user_id": "x"}'),  # no event_id
        (b"k", b'{"event_id": 7, "type": "page_view", "ts": 1795600000000, "user_id": "x"}'),  # wrong type
        (b"k", b'{"event_id": "h", "type": "page_view", "ts": "yesterday", "user_id": "x"}'),  # bad ts
        (b"k", b'{"event_id": "n", "type": "page_view", "ts": 1795600000000}'),  # no user key
        (b"k", json.dumps({"event_id": "big", "type": "page_view", "ts": scenarios.T0, "user_id": "x",
                           "params": {"blob": "x" * 500_000}}).encode()),  # huge
        (b"k", None),  # a tombstone on the events topic
        (b"k", b'{"event_id": "far", "type": "page_view", "ts": 1000000000000000000000000000000, "user_id": "x"}'),
        (b"k", b'{"event_id": "deep", "type": "page_view", "ts": 1795600000000, "user_id": "x", "params": '
               + b'{"a": ' * 10_000 + b"1" + b"}" * 10_001),  # poison pills for the decoder and the state
    ]
    unknown_type = {"event_id": "u", "type": "never_heard_of_it", "ts": scenarios.T0, "user_id": "x"}
    records = [(None, json.dumps(e).encode()) for e in good]
    for i, record in enumerate(bad):
        records.insert(2 * i + 1, record)  # bad records between good ones
    records.append((None, json.dumps(unknown_type).encode()))  # valid: no campaign listens, nothing breaks
    produce(kafka_bootstrap, topics.events, records)
    produce(kafka_bootstrap, topics.profiles, [(p["user_id"].encode(), json.dumps(p).encode()) for p in scenarios.PROFILES])

    run_bounded(kafka_bootstrap, topics, until=LAST_TS)

    letters = read_json(kafka_bootstrap, topics.dlq, expected=len(bad) + 1, timeout_s=30)
    assert len(letters) == len(bad)
    assert sorted(letter["offset"] for letter in letters) == [2 * i + 1 for i in range(len(bad))]
    reasons = [letter["reason"] for letter in sorted(letters, key=lambda letter: letter["offset"])]
    for reason, expected in zip(reasons, ["not JSON", "event_id", "event_id", "ts", "user_id", "too large", "tombstone",
                                          "year 9999", "nest"]):
        assert expected in reason
    assert all(letter["topic"] == topics.events and letter["partition"] == 0 for letter in letters)
    triggers = read_json(kafka_bootstrap, topics.triggers, expected=len(scenarios.EXPECTED) + 1, timeout_s=10)
    assert scenarios.summary(triggers) == sorted(scenarios.EXPECTED)


def _two_step(version: int, message: str) -> dict:
    return {"id": "two_step", "version": version, "pattern": {"steps": [{"event": "a"}, {"event": "b"}]},
            "action": {"channel": "push", "endpoint": "app", "message": message}}


def _publish(bootstrap, topic, campaign_id, definition):
    kafka_clients.write(bootstrap, topic, [(campaign_id, None if definition is None else json.dumps(definition).encode())])


class _Traffic:
    """Events for the live job, each with a new id and the current wall time as `ts`."""

    def __init__(self, bootstrap, topics):
        self.bootstrap, self.topics, self.count = bootstrap, topics, 0

    def send(self, user, *types):
        records = []
        for type in types:
            self.count += 1
            event = {"event_id": f"live-{self.count}", "type": type, "ts": int(time.time() * 1000), "user_id": user}
            records.append((user.encode(), json.dumps(event).encode()))
        produce(self.bootstrap, self.topics.events, records)

    def triggers(self):
        return read_json(self.bootstrap, self.topics.triggers, expected=10_000, timeout_s=1)

    def suppressed(self):
        return read_json(self.bootstrap, self.topics.suppressed, expected=10_000, timeout_s=1)

    def until_fired(self, campaign_id, message, probe_types, count=1, records=None):
        """Send the probe events for fresh users until one of them has `count` triggers of
        `campaign_id` with `message` (or of `records`, e.g. the suppressed ones): proof that
        the job applies what was published before."""
        probes = set()

        def fired():
            probe = f"probe-{self.count}"
            probes.add(probe)
            self.send(probe, *probe_types)
            time.sleep(1)
            per_probe = Counter(t["user_key"] for t in (records or self.triggers)()
                                if t["user_key"] in probes and t["campaign_id"] == campaign_id
                                and t["message"] == message)
            return max(per_probe.values(), default=0) >= count

        wait_for(fired, timeout_s=90, every_s=0, what=f"{campaign_id} to fire with {message!r}")


def test_published_campaigns_and_policy_apply_live_and_new_versions_drop_partial_matches(kafka_bootstrap, new_topic):
    topics = fresh_topics(new_topic)
    traffic = _Traffic(kafka_bootstrap, topics)
    with live_job(kafka_bootstrap, topics, campaigns={}):
        _publish(kafka_bootstrap, topics.campaigns, "two_step", _two_step(1, "v1"))
        traffic.until_fired("two_step", "v1", ["a", "b"])

        traffic.send("walker", "a")  # a partial match of version 1
        _publish(kafka_bootstrap, topics.campaigns, "two_step", _two_step(2, "v2"))
        traffic.until_fired("two_step", "v2", ["a", "b"])
        traffic.send("walker", "b")  # would complete version 1's match
        traffic.send("walker", "a", "b")  # a whole match of version 2

        _publish(kafka_bootstrap, topics.campaigns, "two_step", {**_two_step(3, "v3"), "pattern": {"steps": []}})
        [letter] = wait_for(lambda: read_json(kafka_bootstrap, topics.dlq, expected=1, timeout_s=1),
                            what="the invalid version in the DLQ")
        assert "previous version stays" in letter["reason"] and letter["topic"] == topics.campaigns
        traffic.until_fired("two_step", "v2", ["a", "b"])  # version 2 still runs

        _publish(kafka_bootstrap, topics.campaigns, "two_step", None)  # retire
        marker = {"id": "marker", "version": 1, "pattern": {"steps": [{"event": "m"}]},
                  "action": {"channel": "push", "endpoint": "app", "message": "marker"}}
        _publish(kafka_bootstrap, topics.campaigns, "marker", marker)
        traffic.until_fired("marker", "marker", ["m"])  # the retirement came before it
        traffic.send("retiree", "a", "b", "m")
        wait_for(lambda: any(t["user_key"] == "retiree" for t in traffic.triggers()), what="the retiree's marker")

        # The policy, published to the running job: one push a day per user, over all campaigns.
        _publish(kafka_bootstrap, topics.campaigns, POLICY_KEY, {"caps": [{"channel": "push", "max": 1, "per": "1d"}]})
        traffic.until_fired("marker", "marker", ["m", "m"], records=traffic.suppressed)  # the second is held back
        _publish(kafka_bootstrap, topics.campaigns, POLICY_KEY, None)  # removed
        traffic.until_fired("marker", "marker", ["m", "m"], count=2)  # both leave again

    by_user = {}
    for trigger in traffic.triggers():
        by_user.setdefault(trigger["user_key"], []).append((trigger["campaign_id"], trigger["campaign_version"]))
    assert by_user["walker"] == [("two_step", 2)]
    assert by_user["retiree"] == [("marker", 1)]
    suppressed = traffic.suppressed()
    assert suppressed and {(t["campaign_id"], t["suppressed_reason"]) for t in suppressed} == {
        ("marker", "cap push 1 per 1d")}
    assert not {t["trigger_id"] for t in suppressed} & {t["trigger_id"] for t in traffic.triggers()}


def test_a_deadline_fires_within_seconds_when_no_event_arrives_at_all(kafka_bootstrap, new_topic):
    topics = fresh_topics(new_topic)
    quick_abandon = {"id": "quick_abandon", "version": 1,
                     "pattern": {"steps": [{"event": "add_to_cart"}], "unless": ["purchase"],
                                 "absence": {"for": "3s", "event": "add_to_cart"}},
                     "action": {"channel": "email", "endpoint": "mail", "message": "come back"}}
    traffic = _Traffic(kafka_bootstrap, topics)
    with live_job(kafka_bootstrap, topics, campaigns={"quick_abandon": json.dumps(quick_abandon)}):
        traffic.send("shopper", "add_to_cart")  # and then nothing, anywhere
        sent_at = int(time.time() * 1000)
        [trigger] = wait_for(traffic.triggers, timeout_s=90, what="the abandonment")
    deadline = trigger["event_time"]
    assert trigger["campaign_id"] == "quick_abandon"
    assert deadline - sent_at <= 3_000
    assert trigger["emitted_at"] - deadline < 15_000  # the out-of-orderness bound (5 s) plus slack


def test_an_event_from_the_future_is_refused_and_moves_neither_the_watermark_nor_its_users_time(
    kafka_bootstrap, new_topic
):
    topics = fresh_topics(new_topic)
    abandon = {"id": "abandon", "version": 1,
               "pattern": {"steps": [{"event": "add_to_cart"}], "absence": {"for": "10m", "event": "purchase"}},
               "action": {"channel": "email", "endpoint": "mail", "message": "come back"}}
    marker = {"id": "marker", "version": 1, "pattern": {"steps": [{"event": "m"}]},
              "action": {"channel": "push", "endpoint": "app", "message": "marker"}}
    traffic = _Traffic(kafka_bootstrap, topics)
    with live_job(kafka_bootstrap, topics, campaigns={"abandon": json.dumps(abandon), "marker": json.dumps(marker)}):
        traffic.send("shopper", "add_to_cart")  # due in 10 minutes
        now = int(time.time() * 1000)
        skewed = {"event_id": "skewed", "type": "m", "ts": now + 86_400_000, "user_id": "skewed"}
        produce(kafka_bootstrap, topics.events, [(b"skewed", json.dumps(skewed).encode())])  # Kafka timestamp: now
        traffic.send("skewed", "m")  # applied at its own time: the refused one did not move the user's clock
        [letter] = wait_for(lambda: read_json(kafka_bootstrap, topics.dlq, expected=1, timeout_s=1),
                            what="the event from the future in the DLQ")
        wait_for(traffic.triggers, what="the skewed user's marker")
        time.sleep(3)  # had the watermark jumped a day, the shopper's deadline would fire at once
        triggers = traffic.triggers()
    assert "ahead of the record's Kafka timestamp" in letter["reason"] and "--max-future" in letter["reason"]
    assert json.loads(base64.b64decode(letter["value_base64"])) == skewed
    assert [(t["user_key"], t["campaign_id"], t["event_time"] < now + 60_000) for t in triggers] == [
        ("skewed", "marker", True)]
    assert read_json(kafka_bootstrap, topics.late, expected=1, timeout_s=1) == []


def test_rtm_run_bounded_over_the_rtm_topics_gives_the_reference_triggers(kafka_bootstrap):
    from rtm import settings, topics

    topics.ensure_topics(kafka_bootstrap)
    _produce_scenarios(kafka_bootstrap, settings.Topics())  # rtm.events, rtm.profiles, ...

    result = CliRunner().invoke(main, ["run", "--bounded", "--bootstrap", kafka_bootstrap])

    assert result.exit_code == 0, result.output
    triggers = read_json(kafka_bootstrap, settings.TRIGGERS_TOPIC, expected=len(scenarios.EXPECTED) + 1, timeout_s=10)
    assert scenarios.summary(triggers) == sorted(scenarios.EXPECTED)


JOURNEY_CAMPAIGNS = {
    # Any event postpones the 4 s; only the start event restarts the match.
    "idle": {"id": "idle", "version": 1,
             "pattern": {"steps": [{"event": "open", "as": "first"}], "absence": {"for": "4s", "event": "*"}},
             "action": {"channel": "push", "endpoint": "app", "message": "{{ first.params.n }}"}},
    # Once per session, as an A/B test, converted by a purchase within a minute.
    "hello": {"id": "hello", "version": 1, "pattern": {"steps": [{"event": "view"}]},
              "limits": {"max": 1, "per": "session"}, "goal": {"event": "buy", "within": "1m"},
              "action": {"channel": "popup", "endpoint": "web", "message": "base",
                         "variants": [{"name": "x", "weight": 1, "message": "x"},
                                      {"name": "y", "weight": 1, "message": "y"}]}},
    # A pop-up on the same event, lower in priority: one pop-up a session, so hello's slot.
    "promo": {"id": "promo", "version": 1, "priority": -1, "pattern": {"steps": [{"event": "view"}]},
              "action": {"channel": "popup", "endpoint": "web", "message": "promo"}},
    POLICY_KEY: {"caps": [{"channel": "popup", "max": 1, "per": "session"}]},
}


def test_live_job_postpones_absences_caps_per_session_assigns_variants_converts_and_suppresses_as_preview_does(
    kafka_bootstrap, new_topic
):
    topics = fresh_topics(new_topic)
    rules = TimeRules(engine=EngineConfig(session_gap_ms=3_000))
    sent = []

    def send(user, type, **params):
        event = {"event_id": f"j{len(sent)}", "type": type, "ts": int(time.time() * 1000), "user_id": user,
                 "params": params}
        sent.append(event)
        produce(kafka_bootstrap, topics.events, [(user.encode(), json.dumps(event).encode())])

    with live_job(kafka_bootstrap, topics, campaigns={k: json.dumps(v) for k, v in JOURNEY_CAMPAIGNS.items()},
                  rules=rules):
        send("warm-up", "view")  # the job is up once this fires
        wait_for(lambda: read_json(kafka_bootstrap, topics.triggers, expected=1, timeout_s=1), timeout_s=120,
                 what="the first trigger")
        send("walker", "open", n="first")
        send("walker", "view")
        send("walker", "view")  # the same session: capped
        time.sleep(2)
        send("walker", "scroll")  # postpones the idle push by 4 s from here
        time.sleep(4)  # a new session: more than the 3 s gap
        send("walker", "view")
        send("walker", "buy")  # converts the second hello
        time.sleep(6)
        send("closer", "view")  # carries event time past every deadline, for preview

        def once_the_closer_fired():
            triggers = read_json(kafka_bootstrap, topics.triggers, expected=100, timeout_s=1)
            return triggers if any(t["user_key"] == "closer" for t in triggers) else None

        triggers = wait_for(once_the_closer_fired, timeout_s=60, what="the closer's trigger")

    walker = [t for t in triggers if t["user_key"] == "walker"]
    [idle] = [t for t in walker if t["campaign_id"] == "idle"]
    scroll = next(e for e in sent if e["type"] == "scroll")
    assert idle["event_time"] == scroll["ts"] + 4_000 and idle["message"] == "first"
    hello = [t for t in walker if t["campaign_id"] == "hello"]
    assert len(hello) == 2 and {t["variant"] for t in hello} == {t["message"] for t in hello} <= {"x", "y"}

    campaigns = CampaignSet.from_definitions(JOURNEY_CAMPAIGNS)
    preview = run_preview(campaigns, (parse_event(json.dumps(e).encode()) for e in sent), {}, config=rules.engine)
    assert sorted((t["trigger_id"], t["variant"]) for t in triggers) == sorted(
        (t.trigger_id, t.variant) for t in preview.triggers)
    [conversion] = read_json(kafka_bootstrap, topics.conversions, expected=2, timeout_s=5)
    assert conversion["trigger_id"] == hello[-1]["trigger_id"] and conversion["variant"] == hello[-1]["variant"]
    assert [conversion] == msgspec.to_builtins(preview.conversions)
    # Every view met hello's pop-up (shown, or capped by hello's own once a session) first.
    suppressed = read_json(kafka_bootstrap, topics.suppressed, expected=100, timeout_s=5)
    assert {(t["campaign_id"], t["suppressed_reason"]) for t in suppressed} == {("promo", "cap popup 1 per session")}
    assert len([t for t in suppressed if t["user_key"] == "walker"]) == 3
    assert sorted(t["trigger_id"] for t in suppressed) == sorted(t.trigger_id for t in preview.suppressed)
