"""The decisions store without Kafka or HTTP: each message handed out once, in arrival order."""

from rtm.decisions import MessageStore

NOW = 1_795_600_000_000


def row(trigger_id, user_key="u1", channel="popup", emitted_at=NOW, ttl=60_000):
    return (trigger_id, user_key, channel, emitted_at, emitted_at + ttl, f'{{"trigger_id": "{trigger_id}"}}'.encode())


def test_take_hands_out_pending_messages_in_arrival_order_once(tmp_path):
    store = MessageStore(tmp_path / "s.sqlite")
    assert store.add([row("b"), row("a"), row("c", user_key="u2")], "t", {0: 3}) == ["u1", "u1", "u2"]
    assert store.take("u1", ["popup"], NOW) == [b'{"trigger_id": "b"}', b'{"trigger_id": "a"}']
    assert store.take("u1", ["popup"], NOW) == []
    assert store.mark_shown("a", NOW) == "already shown"
    assert store.pending_count() == 1


def test_a_repeat_of_a_shown_id_stays_shown_and_offsets_are_stored_with_the_rows(tmp_path):
    path = tmp_path / "s.sqlite"
    store = MessageStore(path)
    store.add([row("a")], "t", {0: 1})
    store.take("u1", ["popup"], NOW)
    assert store.add([row("a")], "t", {0: 2}) == []
    store.close()
    reopened = MessageStore(path)
    assert reopened.offsets("t") == {0: 2}
    assert reopened.take("u1", ["popup"], NOW) == []


def test_expired_messages_are_not_served_nor_acknowledged_and_are_pruned(tmp_path):
    store = MessageStore(tmp_path / "s.sqlite")
    store.add([row("old", emitted_at=NOW - 120_000), row("new")], "t", {0: 2})
    assert store.peek("u1", ["popup"], NOW) == [b'{"trigger_id": "new"}']
    assert store.mark_shown("old", NOW) == "unknown"
    assert store.prune(NOW) == 1
    assert store.mark_shown("new", NOW) == "shown"
    assert store.take("u1", ["popup"], NOW) == []


def test_only_the_asked_channels_are_served(tmp_path):
    store = MessageStore(tmp_path / "s.sqlite")
    store.add([row("p"), row("i", channel="in-app")], "t", {0: 2})
    assert store.take("u1", ["in-app"], NOW) == [b'{"trigger_id": "i"}']
    assert store.take("u1", ["popup", "in-app"], NOW) == [b'{"trigger_id": "p"}']
