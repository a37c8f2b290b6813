"""Campaign files: the shipped ones validate; bad ones are reported with file, line, field, allowed values."""

import json

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from rtm.campaigns import SCHEMA_PATH, CampaignError, campaign_files, load_file, load_paths
from rtm.cli.campaigns import campaigns as cli
from rtm.settings import CAMPAIGNS_DIR

SHIPPED = campaign_files([CAMPAIGNS_DIR])  # policy.yaml is the policy (test_arbitration)


def test_every_reference_scenario_ships_a_campaign():
    assert {p.stem for p in SHIPPED} >= {
        "welcome_coupon", "store_section_popup", "vip_checkout_recommendations", "cart_abandoned_email",
        "user_left_game", "game_come_back_email", "three_page_views", "login_to_play"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_campaigns_validate_and_start_with_a_comment(path):
    campaign = load_file(path)
    assert campaign.id == path.stem
    assert path.read_text().startswith("# ")
    jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text())).validate(yaml.safe_load(path.read_text()))


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def issues_of(tmp_path, name, text):
    with pytest.raises(CampaignError) as err:
        load_file(write(tmp_path, name, text))
    return [(i.line, i.field, i.message) for i in err.value.issues]


OK = """\
id: ok
version: 1
pattern:
  steps:
    - event: page_view
action:
  channel: popup
  endpoint: web
"""


def test_an_unknown_key_names_line_field_and_the_allowed_keys(tmp_path):
    [(line, field, message)] = issues_of(tmp_path, "ok.yaml", OK.replace("  endpoint: web", "  endpoint: web\n  chanel: x"))
    assert (line, field) == (6, "action")
    assert "'chanel' was unexpected" in message and "allowed: channel, data, endpoint, message" in message


def test_a_wrong_enum_value_lists_the_allowed_values(tmp_path):
    [(line, field, message)] = issues_of(tmp_path, "ok.yaml", OK.replace("channel: popup", "channel: sms"))
    assert (line, field) == (7, "action.channel") and "['popup', 'email', 'push', 'webhook']" in message


def test_a_bad_condition_is_caught_at_load_with_its_line(tmp_path):
    text = OK.replace("    - event: page_view", "    - event: page_view\n      where: evnt.type == 'x'")
    [(line, field, message)] = issues_of(tmp_path, "ok.yaml", text)
    assert (line, field) == (6, "pattern.steps[0].where") and "unknown name 'evnt'" in message


def test_a_template_error_is_caught_at_load(tmp_path):
    text = OK + "  message: \"{{ event.type | nosuch }}\"\n"
    [(line, field, message)] = issues_of(tmp_path, "ok.yaml", text)
    assert (line, field) == (9, "action.message") and "No filter named 'nosuch'" in message


def test_a_binding_used_before_it_is_bound_is_an_error(tmp_path):
    text = OK.replace("    - event: page_view", "    - {event: page_view, where: cart.params.sku == 1}\n"
                                                 "    - {event: add_to_cart, as: cart}")
    [(_, field, message)] = issues_of(tmp_path, "ok.yaml", text)
    assert field == "pattern.steps[0].where" and "unknown name 'cart'" in message


def test_id_must_equal_the_file_stem_and_duplicate_keys_are_reported(tmp_path):
    issues = issues_of(tmp_path, "other.yaml", OK.replace("version: 1", "version: 1\nversion: 2"))
    assert (3, "version", "key given twice; keep one") in issues
    assert any(field == "id" and "must equal the file name 'other'" in m for _, field, m in issues)


def test_a_machine_state_that_is_never_entered_is_reported(tmp_path):
    text = OK.replace("  steps:\n    - event: page_view\n", """  machine:
    initial: out
    transitions:
      - {from: out, event: login, to: in}
      - {from: nowhere, event: play, to: playing}
    fire_on: [playing]
""")
    [(line, field, message)] = issues_of(tmp_path, "ok.yaml", text)
    assert field == "pattern.machine.transitions[1].from" and "never entered" in message and line == 8


def test_yaml_syntax_error_is_a_message_with_a_line(tmp_path):
    [(line, field, message)] = issues_of(tmp_path, "ok.yaml", "id: ok\npattern: [\n")
    assert line == 3 and message.startswith("YAML syntax error")


def test_load_paths_checks_every_file_not_just_the_first(tmp_path):
    write(tmp_path, "a.yaml", "id: a\n")
    write(tmp_path, "b.yaml", "{{{")
    write(tmp_path, "ok.yaml", OK)
    campaigns, issues = load_paths([tmp_path])
    assert [c.id for c in campaigns] == ["ok"]
    assert {i.source.rsplit("/", 1)[-1] for i in issues} == {"a.yaml", "b.yaml"}


def test_cli_validate_reports_all_problems_and_exits_non_zero(tmp_path):
    write(tmp_path, "a.yaml", OK.replace("id: ok", "id: a").replace("version: 1", "version: one"))
    write(tmp_path, "b.yaml", "pattern: [")
    write(tmp_path, "ok.yaml", OK)
    result = CliRunner().invoke(cli, ["validate", str(tmp_path)])
    assert result.exit_code == 1
    assert f"{tmp_path}/a.yaml:2: version: 'one' is not of type 'integer'" in result.output
    assert f"{tmp_path}/b.yaml:1: (top level): YAML syntax error" in result.output
    assert "Traceback" not in result.output and "2 problem(s) in 2 of 3 file(s)" in result.output


def test_cli_validate_accepts_the_shipped_campaigns():
    result = CliRunner().invoke(cli, ["validate", str(CAMPAIGNS_DIR)])
    assert result.exit_code == 0, result.output
    assert f"ok: {len(SHIPPED)} campaign(s)" in result.output


@pytest.mark.parametrize("message, problem", [
    ("{{ event.__class__ }}", "attribute '__class__' is not data"),
    ("{{ event.params.get.__globals__ }}", "attribute '__globals__' is not data"),
    ("{{ cycler.__init__.__globals__.os }}", "unknown name 'cycler'"),
    ("{{ event.params.items.__self__.__class__ }}", "attribute '__class__' is not data"),
    ("{{ event['__class__'] }}", "field '__class__' is not data"),
    ("{{ event.type.format(event) }}", "calling 'format' is refused"),
    ("{{ 'a' * 100000000 }}", "`*` would build a sequence of 100000000, above 10000"),
    ("{% for x in event.params.l %}{{ x }}{% endfor %}", "the statement {% for %} is refused"),
])
def test_cli_validate_refuses_sandbox_escapes_and_100_mb_templates_with_file_line_and_field(tmp_path, message, problem):
    write(tmp_path, "ok.yaml", OK + f"  message: {json.dumps(message)}\n")
    result = CliRunner().invoke(cli, ["validate", str(tmp_path)])
    assert result.exit_code == 1
    assert f"{tmp_path}/ok.yaml:9: action.message: {problem}" in result.output
