"""`helm test` for kbsearch: wait for /readyz, sign in as the test account, search, expect results.

Runs in the kbsearch image (standard library only) against the web Service. Configuration is the
environment: KBSEARCH_TEST_URL (http://<web service>), KBSEARCH_TEST_HOST (the Host header, an
allowed host), KBSEARCH_TEST_QUERY, KBSEARCH_TEST_MIN_RESULTS, KBSEARCH_TEST_READY_TIMEOUT, and
from the test Secret either KBSEARCH_TEST_TOKEN (an API token) or KBSEARCH_TEST_USERNAME and
KBSEARCH_TEST_PASSWORD (signed in through the sign-in page, as a person would).

Cookies are handled by hand: the site marks them Secure (HTTPS at the ingress), and the standard
cookie jar would not send them back over the Service's plain HTTP. Exit status 0 means a signed-in
search returned at least KBSEARCH_TEST_MIN_RESULTS results; anything else prints why and exits 1.
"""
import json
import os
import sys
import time
import urllib.parse
from http.client import HTTPConnection, HTTPResponse
from http.cookies import SimpleCookie


class CheckFailed(Exception):
    pass


class Site:
    def __init__(self, base_url: str, host: str):
        parts = urllib.parse.urlsplit(base_url)
        self.netloc = parts.netloc
        self.host = host
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, *, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[HTTPResponse, bytes]:
        connection = HTTPConnection(self.netloc, timeout=60)
        sent = {"Host": self.host, **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            content = response.read()
        finally:
            connection.close()
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        return response, content


def wait_ready(site: Site, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response, content = site.request("GET", "/readyz")
            if response.status == 200:
                print("ready")
                return
            last = f"{response.status} {content[:200]!r}"
        except OSError as error:
            last = str(error)
        time.sleep(5)
    raise CheckFailed(f"/readyz did not answer 200 within {timeout:.0f} s (last: {last})")


def sign_in(site: Site, username: str, password: str) -> None:
    response, _ = site.request("GET", "/accounts/login/")
    if response.status != 200 or "csrftoken" not in site.cookies:
        raise CheckFailed(f"the sign-in page answered {response.status} without a CSRF cookie")
    form = urllib.parse.urlencode({
        "username": username, "password": password, "next": "/",
        # Django accepts the cookie's secret itself as the form token.
        "csrfmiddlewaretoken": site.cookies["csrftoken"],
    }).encode()
    response, _ = site.request("POST", "/accounts/login/", body=form, headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "Referer": f"https://{site.host}/accounts/login/",
    })
    # Success redirects to the search page; a wrong password renders the form again (200).
    if response.status != 302 or "sessionid" not in site.cookies:
        raise CheckFailed(f"signing in as {username!r} failed (status {response.status}): check the test Secret")
    print(f"signed in as {username}")


def search(site: Site, query: str, token: str) -> dict:
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Token {token}"
    path = "/api/v1/search?" + urllib.parse.urlencode({"q": query, "limit": 10})
    response, content = site.request("GET", path, headers=headers)
    if response.status != 200:
        raise CheckFailed(f"search answered {response.status}: {content[:300]!r}")
    return json.loads(content)


def main() -> int:
    environ = os.environ
    site = Site(environ["KBSEARCH_TEST_URL"], environ["KBSEARCH_TEST_HOST"])
    query = environ.get("KBSEARCH_TEST_QUERY", "")
    minimum = int(environ.get("KBSEARCH_TEST_MIN_RESULTS", "1"))
    token = environ.get("KBSEARCH_TEST_TOKEN", "")
    try:
        wait_ready(site, float(environ.get("KBSEARCH_TEST_READY_TIMEOUT", "300")))
        if not token:
            sign_in(site, environ.get("KBSEARCH_TEST_USERNAME", ""), environ.get("KBSEARCH_TEST_PASSWORD", ""))
        answer = search(site, query, token)
    except CheckFailed as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    results = answer.get("results", [])
    for result in results:
        print(f"  {result.get('rank')}. {result.get('title')} ({result.get('source', {}).get('key')})")
    if len(results) < minimum:
        print(f"FAILED: {query!r} returned {len(results)} results, expected at least {minimum}", file=sys.stderr)
        return 1
    print(f"OK: {query!r} returned {len(results)} of about {answer.get('total')} results")
    return 0


if __name__ == "__main__":
    sys.exit(main())
