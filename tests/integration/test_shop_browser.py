"""The demo shop in headless Chromium, end to end: the page posts events to `rtm collect`,
the campaign job (shipped campaigns/) turns them into triggers, `rtm serve` pushes the
pop-ups back to the page. Debian's `chromium` (apt-get install chromium; `.ci/run`
installs it) drives through Playwright; Playwright's own browser download is not used.
"""

import shutil

import pytest
from playwright.sync_api import expect, sync_playwright

from job_helpers import fresh_topics, live_job
from server_helpers import running

pytestmark = [pytest.mark.kafka, pytest.mark.flink]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The job starts within ~20 s on a busy 2-core machine; a pop-up then arrives in well under a second.
FIRST_POPUP_TIMEOUT_MS = 90_000
POPUP_TIMEOUT_MS = 20_000


@pytest.fixture
def browser():
    assert shutil.which(CHROMIUM), "no Chromium: run `apt-get install -y chromium` (.ci/run does it under CI)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


def test_a_first_time_visitor_sees_the_welcome_popup_then_after_login_the_section_popup(
        kafka_bootstrap, new_topic, tmp_path, browser):
    topics = fresh_topics(new_topic)
    kafka = ["--bootstrap", kafka_bootstrap]
    with live_job(kafka_bootstrap, topics), \
            running(["collect", *kafka, "--topic", topics.events], tmp_path / "collect.log") as collect, \
            running(["serve", *kafka, "--topic", topics.triggers, "--feed", "--store", str(tmp_path / "d.sqlite")],
                    tmp_path / "serve.log") as serve, \
            running(["shop", "--collect-url", collect.url, "--serve-url", serve.url], tmp_path / "shop.log") as shop:
        page = browser.new_context().new_page()  # a fresh profile: a first-time visitor
        errors = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(shop.url)

        expect(page.locator("#page-landing")).to_be_visible()
        popup = page.locator("#popup")
        expect(popup).to_be_visible(timeout=FIRST_POPUP_TIMEOUT_MS)
        expect(popup).to_have_attribute("data-campaign", "welcome_coupon")
        expect(popup.locator(".popup-message")).to_have_text("Welcome! Here is $5 off your first order.")
        expect(popup.locator(".popup-data")).to_have_text("Code WELCOME5")
        page.locator("#popup-close").click()
        expect(popup).to_be_hidden()

        page.locator("#login-name").fill("alice")
        page.locator("#login-button").click()
        expect(page.locator("#user-name")).to_have_text("alice")
        page.locator("#sections a[data-section=shoes]").click()
        expect(page.locator("#page-section-shoes")).to_be_visible()

        expect(popup).to_be_visible(timeout=POPUP_TIMEOUT_MS)
        expect(popup).to_have_attribute("data-campaign", "store_section_popup")
        expect(popup.locator(".popup-message")).to_have_text("New arrivals in Shoes for you!")

        # The live list beside the shop shows both triggers, for the two user keys.
        expect(page.locator("#triggers li[data-campaign=welcome_coupon]")).to_have_count(1)
        expect(page.locator("#triggers li[data-campaign=store_section_popup][data-user-key=alice]")).to_have_count(1)
        # Every click reached Kafka: the collector accepted each event the page sent.
        expect(page.locator("#events li:not([data-status])")).to_have_count(0)
        expect(page.locator("#events li:not([data-status=accepted])")).to_have_count(0)
        assert page.locator("#events li").count() >= 3  # landing, login, section
        page.screenshot(path=tmp_path / "shop.png")

        # A reload opens the stream again: the pop-ups already shown do not come back.
        page.reload()
        expect(page.locator("#user-name")).to_have_text("alice")
        page.wait_for_timeout(1500)
        expect(popup).to_be_hidden()
        assert errors == []
