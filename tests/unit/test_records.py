"""The output records (rtm.records): their JSON, the contract page and the SQL tables agree."""

import re

import msgspec
import pytest
from msgspec import inspect

from rtm import settings
from rtm.dlq import dead_letter
from rtm.records import Conversion, DeadLetter, SessionRecord, Suppressed, Trigger
from rtm.sessions import Session, record
from rtm.triggers import make_trigger

CONTRACTS = settings.PROJECT_ROOT / "docs" / "CONTRACTS.md"
TABLES = settings.SQL_DIR / "tables.sql.j2"


def test_a_trigger_is_the_json_of_the_contract_every_field_present_in_order():
    trigger = make_trigger(campaign_id="c", version=2, user_key="a1", user_id=None, anonymous_id="a1",
                           channel="popup", endpoint="web", message="hi", data={"coupon": "W5"},
                           matched_event_ids=["e1"], event_time=1_795_600_000_000, holdout=False)

    assert msgspec.json.encode(trigger) == (
        b'{"trigger_id":"' + trigger.trigger_id.encode() + b'","campaign_id":"c","campaign_version":2,'
        b'"user_key":"a1","user_id":null,"anonymous_id":"a1","channel":"popup","endpoint":"web","message":"hi",'
        b'"data":{"coupon":"W5"},"matched_event_ids":["e1"],"event_time":1795600000000,"emitted_at":null,'
        b'"holdout":false,"variant":null,"scheduled_for":null}'
    )


def test_a_session_record_is_the_json_of_the_contract_with_end_null_while_open():
    session = Session(3, 1_000, 5_000, 4, 2, "ios")

    started, ended = (msgspec.json.decode(msgspec.json.encode(record(kind, session, "u1", "u1", None)))
                      for kind in ("session_start", "session_end"))

    assert list(started) == list(SessionRecord.__struct_fields__)
    assert started == {"kind": "session_start", "session_id": started["session_id"], "user_key": "u1",
                       "user_id": "u1", "anonymous_id": None, "index": 3, "start": 1_000, "end": None,
                       "event_count": 4, "pages": 2, "platform": "ios"}
    assert ended == {**started, "kind": "session_end", "end": 5_000}


def test_a_dead_letter_of_a_tombstone_has_no_preview():
    letter = msgspec.json.decode(dead_letter("why", topic="t", partition=1, offset=7, key="k", value=None))

    assert letter == {"reason": "why", "topic": "t", "partition": 1, "offset": 7, "key": "k", "value_base64": None}


def _contract_fields(section: str) -> list[str]:
    """The field names of the first table under `## section` of docs/CONTRACTS.md."""
    text = CONTRACTS.read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in body.splitlines() if line.startswith("| `")]
    return [name for row in rows for name in re.findall(r"`([a-z0-9_]+)`", row.split("|")[1])]


@pytest.mark.parametrize("section, record_type", [("Trigger", Trigger), ("Suppressed", Suppressed),
                                                  ("Session", SessionRecord), ("Conversion", Conversion),
                                                  ("Dead letters", DeadLetter)])
def test_the_contract_page_names_every_field_of_each_record_in_order(section, record_type):
    assert _contract_fields(section) == list(record_type.__struct_fields__)


# A SQL column type, and the Python type of the record field it reads.
_SQL_TYPES = {"STRING": str, "BIGINT": int, "INT": int, "BOOLEAN": bool}
_FIELD_TYPES = {inspect.StrType: str, inspect.LiteralType: str, inspect.IntType: int, inspect.BoolType: bool}


def _sql_columns(table: str) -> dict[str, str]:
    """Column -> SQL type of the physical columns of `table` in sql/tables.sql.j2."""
    body = TABLES.read_text().split(f"CREATE TEMPORARY TABLE {table} (\n", 1)[1].split("\n) WITH", 1)[0]
    columns = re.findall(r"^  `?([a-z_]+)`? ([A-Z]+),$", body, re.MULTILINE)
    assert columns, f"no columns found for {table} in {TABLES}"
    return dict(columns)


def _field_type(info: inspect.Type) -> type:
    """The one Python type a field holds besides null."""
    [kind] = {_FIELD_TYPES[type(t)] for t in getattr(info, "types", (info,)) if not isinstance(t, inspect.NoneType)}
    return kind


@pytest.mark.parametrize("table, record_type", [("kafka_triggers", Trigger), ("kafka_suppressed", Suppressed),
                                                ("kafka_sessions", SessionRecord), ("kafka_conversions", Conversion)])
def test_the_sql_tables_read_fields_the_records_have_with_their_types(table, record_type):
    fields = {f.name: f.type for f in inspect.type_info(record_type).fields}

    for column, sql_type in _sql_columns(table).items():
        assert column in fields, f"{TABLES}: {table}.{column} is no field of rtm.records.{record_type.__name__}"
        assert _SQL_TYPES[sql_type] is _field_type(fields[column]), f"{table}.{column} {sql_type}: {fields[column]}"
