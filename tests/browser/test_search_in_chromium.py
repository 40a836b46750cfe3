"""End to end in headless Chromium: a demo user signs in, searches in Chinese and in English, sees
highlighted results, opens one and gives feedback. Uses the bundled demo knowledge base and users
(``manage.py demo_setup``) indexed with vectors made for the test (``tests.keyword_encoder``),
served by Django's live server.

Needs Debian's ``chromium`` and ``chromium-driver`` (``make test`` installs them when missing); a
missing browser fails the test rather than skipping it.
"""
import shutil

import pytest
from django.core.management import call_command
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as until
from selenium.webdriver.support.ui import WebDriverWait

from kbsearch.analytics.models import Click, Feedback, QueryLog
from tests.keyword_encoder import KeywordEncoder
from tests.knowledge_base import use_encoder

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
    "--lang=en-US",
)
WAIT_SECONDS = 30


def _find(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(f"none of {names} is installed: apt-get install chromium chromium-driver")


@pytest.fixture
def browser(tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = _find("chromium", "chromium-browser")
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.add_experimental_option("prefs", {"intl.accept_languages": "en-US,en"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=_find("chromedriver")))
    driver.set_page_load_timeout(WAIT_SECONDS)
    yield driver
    driver.quit()


@pytest.fixture
def demo(index_backend, settings, monkeypatch):
    settings.KBSEARCH_WARM_ENCODER = False  # a loader thread would outlive the test
    # Vectors chosen for the test, so what ranks near the top follows from the words (the expense
    # policy is the one document with both 报销 and 期限), not from the tiny model's geometry.
    use_encoder(monkeypatch, KeywordEncoder(["报销", "期限", "vpn", "gateway"]))
    call_command("demo_setup", verbosity=0)


def wait(driver):
    return WebDriverWait(driver, WAIT_SECONDS)


def search(driver, text: str) -> list:
    box = driver.find_element(By.ID, "q")
    box.clear()
    box.send_keys(text, Keys.ENTER)
    wait(driver).until(until.presence_of_element_located((By.CSS_SELECTOR, "p.summary")))
    assert driver.find_element(By.ID, "q").get_attribute("value") == text
    return driver.find_elements(By.CSS_SELECTOR, "li.result")


def test_demo_user_searches_opens_a_result_and_gives_feedback(live_server, browser, demo):
    browser.get(f"{live_server.url}/?q=VPN")
    wait(browser).until(until.presence_of_element_located((By.ID, "id_username")))
    assert "/accounts/login/" in browser.current_url
    browser.find_element(By.ID, "id_username").send_keys("alice")
    browser.find_element(By.ID, "id_password").send_keys("kbsearch-demo", Keys.ENTER)
    wait(browser).until(until.presence_of_element_located((By.CSS_SELECTOR, "li.result")))

    # Chinese: the expense policy; the query's words are marked in the snippets.
    results = search(browser, "报销 期限")
    assert results, "no results for a Chinese query"
    marks = {mark.text for mark in browser.find_elements(By.CSS_SELECTOR, "li.result .snippet mark")}
    assert marks & {"报销", "期限"}, marks
    titles = [r.find_element(By.CSS_SELECTOR, ".result-title a").text for r in results]
    assert any("报销" in title or "Expense" in title for title in titles[:3]), titles

    # English: the VPN guide, opened from the results.
    results = search(browser, "VPN gateway")
    assert "VPN" in {mark.text for mark in browser.find_elements(By.CSS_SELECTOR, "li.result mark")}
    query_log = QueryLog.objects.filter(user__username="alice").latest("created_at")
    assert query_log.query == "VPN gateway" and query_log.channel == "web"
    first = results[0].find_element(By.CSS_SELECTOR, ".result-title a")
    title = first.text
    first.send_keys(Keys.ENTER)  # by keyboard, as the page is meant to be usable
    wait(browser).until(until.presence_of_element_located((By.CSS_SELECTOR, "article.document h1")))
    assert browser.find_element(By.CSS_SELECTOR, "article.document h1").text == title
    assert browser.find_elements(By.CSS_SELECTOR, ".document-body mark")
    click = Click.objects.get(user__username="alice")
    assert click.rank == 1 and click.query_log == query_log and click.document.title == title

    # Back to the results and a thumbs up on the second result, sent by the page's script.
    browser.find_element(By.CSS_SELECTOR, ".back a").click()
    wait(browser).until(until.presence_of_element_located((By.CSS_SELECTOR, "li.result")))
    second = browser.find_elements(By.CSS_SELECTOR, "li.result")[1]
    rated_id = int(second.get_attribute("data-document-id"))
    up = second.find_element(By.CSS_SELECTOR, 'button[value="up"]')
    up.click()
    wait(browser).until(lambda driver: up.get_attribute("aria-pressed") == "true")
    assert "Thanks" in second.find_element(By.CSS_SELECTOR, ".feedback-status").text
    feedback = Feedback.objects.get(user__username="alice")
    assert feedback.document_id == rated_id and feedback.value == 1 and feedback.rank == 2
    assert feedback.query == "VPN gateway" and feedback.query_log is not None
