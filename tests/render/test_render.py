"""Open the built book in headless Chromium and check what a reader sees, with no network.

Run after `jupyter-book build .` (``make test`` does). Checks, from the rendered DOM of every
page: equations were typeset by MathJax (served from the build itself) and no raw ``\\[`` or
``$$`` is left, every image loaded, and every internal link resolves. Saves a screenshot of the
forward-process chapter to ``_build/screenshot-forward.png``.
"""
import functools
import http.server
import pathlib
import shutil
import tempfile
import threading
import urllib.parse

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
PAGES = sorted(p.relative_to(HTML).as_posix() for p in HTML.glob("book/*.html")) if HTML.exists() else []
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def server():
    assert HTML.joinpath("index.html").exists(), "build the book first: jupyter-book build ."
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(HTML))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    assert CHROMIUM and CHROMEDRIVER, "install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--no-first-run", "--disable-component-update", "--disable-sync", "--disable-quic",
                 f"--user-data-dir={profile}", "--window-size=1280,2000"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _wait_for_mathjax(driver):
    # MathJax 3 exposes a startup promise; resolve it (or time out) before reading the DOM.
    driver.set_script_timeout(60)
    return driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        if (!window.MathJax || !MathJax.startup) { done('no-mathjax'); return; }
        MathJax.startup.promise.then(() => done('ok')).catch(e => done('error: ' + e));
    """)


def test_pages_were_built():
    assert "book/forward.html" in PAGES and "book/intro.html" in PAGES


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_offline(server, browser, page):
    browser.get(server + page)
    has_math = browser.execute_script("return document.querySelectorAll('.math').length") > 0
    if has_math:
        assert _wait_for_mathjax(browser) == "ok", f"{page}: MathJax did not load from the build"
        untypeset = browser.execute_script(
            "return [...document.querySelectorAll('.math')].filter(e => !e.querySelector('mjx-container')).length")
        assert untypeset == 0, f"{page}: {untypeset} equations not typeset"
        text = browser.execute_script(
            "const c = document.querySelector('main').cloneNode(true);"
            "c.querySelectorAll('pre, code, mjx-container, script').forEach(e => e.remove());"
            "return c.innerText;")
        for raw in ("\\[", "\\]", "$$", "\\begin{"):
            assert raw not in text, f"{page}: raw LaTeX {raw!r} left on the page"
    external = browser.execute_script(
        "return [...document.querySelectorAll('script[src], link[rel=stylesheet]')].map(e => e.src || e.href)")
    external = [u for u in external if not u.startswith(server)]
    assert not external, f"{page}: scripts or styles fetched from the network: {external}"
    broken = browser.execute_script(
        "return [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
    assert not broken, f"{page}: images that did not load: {broken}"
    links = browser.execute_script("return [...document.querySelectorAll('a[href]')].map(a => a.href)")
    for href in links:
        url = urllib.parse.urlparse(href)
        if not href.startswith(server):
            continue
        target = HTML / urllib.parse.unquote(url.path.lstrip("/"))
        if target.is_dir():
            target = target / "index.html"
        assert target.exists(), f"{page}: internal link to a missing file: {href}"
        if url.fragment and target.suffix == ".html":
            html = target.read_text(errors="replace")
            assert f'id="{url.fragment}"' in html, f"{page}: link to a missing anchor: {href}"
    if page == "book/forward.html":
        browser.save_screenshot(str(ROOT / "_build" / "screenshot-forward.png"))


def test_chapters_carry_a_colab_badge_to_their_notebook(server, browser):
    browser.get(server + "book/forward.html")
    hrefs = browser.execute_script("return [...document.querySelectorAll('.colab-badge a')].map(a => a.href)")
    assert hrefs and hrefs[0].startswith("https://colab.research.google.com/github/")
    assert hrefs[0].endswith("/notebooks/forward.ipynb")
