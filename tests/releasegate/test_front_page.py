"""The front page (issue 13): `/` says what Release Gate is and shows each person what waits for
them; the admin's "View site" goes there; every demo login has something to see.

Seen: http://127.0.0.1:8000/ was Django's debug 404 listing URL patterns (the admin's "View
site" link went there), and the demo `requester` saw "You don't have permission to view or edit
anything." """

import os
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from releasegate.management.commands.seed_demo import DEMO_USERS
from releasegate.models import User
from tests.browser import chromium

SCREENSHOTS = Path(os.environ.get("RELEASEGATE_SCREENSHOTS", "")) if os.environ.get("RELEASEGATE_SCREENSHOTS") else None

# What each demo login must find waiting on its front page (the sections' ids).
EXPECTED = {
    "admin": {"in-progress", "retrospectives", "unauthorised", "decisions"},  # being admin is no signing authority
    "requester": {"in-progress", "retrospectives", "unauthorised", "decisions"},
    "approver": {"to-sign", "retrospectives", "unauthorised", "decisions"},
    "approver2": {"to-sign", "retrospectives", "unauthorised", "decisions"},
    "auditor": {"retrospectives", "unauthorised", "decisions"},
}
SECTIONS = ("to-sign", "in-progress", "retrospectives", "unauthorised", "decisions")
PASSWORDS = {username: password for username, password, _ in DEMO_USERS}


@pytest.fixture
def demo(db: None, settings: Any) -> None:
    settings.DEBUG = True  # seed_demo runs only with DEBUG: its passwords are public
    call_command("seed_demo", "--quiet", stdout=StringIO())
    settings.DEBUG = False


def test_the_front_page_says_what_release_gate_is_to_anyone(db: None, settings: Any) -> None:
    for debug in (False, True):
        settings.DEBUG = debug
        response = Client().get("/")

        assert response.status_code == 200
        text = response.content.decode()
        assert "Release Gate stands between the bank's pipelines and production" in text
        for link in ('href="/admin/"', 'href="/api/docs/"', 'href="/docs/"', 'href="/admin/login/?next=/"'):
            assert link in text
        assert "What waits for you" not in text


@pytest.mark.parametrize("username", list(EXPECTED))
def test_every_demo_login_finds_what_waits_for_it(demo: None, username: str) -> None:
    client = Client()
    client.force_login(User.objects.get(username=username))

    text = client.get("/").content.decode()

    shown = {section for section in SECTIONS if f'id="{section}"' in text}
    assert shown == EXPECTED[username]
    assert "Nothing waits for you." not in text


def test_the_requester_sees_their_changes_in_the_admin_and_never_the_others(demo: None) -> None:
    client = Client()
    client.force_login(User.objects.get(username="requester"))

    index = client.get("/admin/").content.decode()
    changelogs = client.get("/admin/changelogs/changelog/").content.decode()

    assert "permission to view or edit anything" not in index
    assert 'href="/admin/changelogs/changelog/"' in index
    assert "payments-api" in changelogs
    assert "payments-web" in changelogs


def test_a_requester_of_another_domain_sees_no_payments_change(demo: None) -> None:
    from tests.factories import UserFactory

    outsider = UserFactory(username="transfers-engineer")
    client = Client()
    client.force_login(outsider)

    assert client.get("/admin/changelogs/changelog/").status_code == 403
    text = client.get("/").content.decode()
    assert "payments-api" not in text
    assert "Nothing waits for you." in text


def test_the_admins_view_site_link_goes_to_the_front_page(demo: None) -> None:
    client = Client()
    client.force_login(User.objects.get(username="admin"))

    assert 'href="/">View site</a>' in client.get("/admin/").content.decode()
    assert client.get("/").status_code == 200


def test_the_documentation_is_served_from_docs(db: None) -> None:
    index = Client().get("/docs/")
    page = Client().get("/docs/gate.md")

    assert "gate.md" in index.content.decode().split()
    assert page.status_code == 200
    assert page.content.startswith(b"# The gate")
    assert Client().get("/docs/..%2Fsettings.py").status_code == 404
    assert Client().get("/docs/nothing.md").status_code == 404


# --- In Chromium: a screenshot of each demo login's front page ------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


@pytest.mark.browser
def test_each_demo_login_sees_its_waiting_items_on_the_front_page_in_chromium(
    browser: Any, live_server: Any, demo: None, tmp_path: Path
) -> None:
    for username, expected in EXPECTED.items():
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        blocked: list[Any] = []

        def keep(message: Any, into: list[Any] = blocked) -> None:
            into.append(message)

        page.on("console", keep)
        page.goto(f"{live_server.url}/admin/login/?next=/")
        page.fill("#id_username", username)
        page.fill("#id_password", PASSWORDS[username])
        page.click("input[type=submit]")
        page.wait_for_url(f"{live_server.url}/")

        shown = {section for section in SECTIONS if page.locator(f"#{section}").is_visible()}
        screenshot = page.screenshot(path=str((SCREENSHOTS or tmp_path) / f"front-page-{username}.png"), full_page=True)

        assert shown == expected, username
        assert page.locator("#what-it-is").is_visible()
        assert len(screenshot) > 10_000  # a rendered page, not a blank one
        assert [m.text for m in blocked if "Content Security Policy" in m.text] == []
        page.click("text=View site")  # the admin header's link comes back here
        page.wait_for_url(f"{live_server.url}/")
        context.close()
