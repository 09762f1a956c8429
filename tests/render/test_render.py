"""Open the built book in headless Chromium and check what a reader sees, with no network.

Run after `jupyter-book build .` (``make render`` and ``make test`` do; ``make render`` first
installs Debian's chromium and chromium-driver when they are missing, see ``setup_browser.sh``).
Checks, from the rendered DOM of every page at a 1280 px window: equations were typeset by MathJax
(served from the build itself); no raw TeX is left anywhere in the page's text outside code (a
``\\command``, ``_{`` or ``^{``, ``\\[``, ``$$``: e.g. a link whose target title holds maths);
no typeset display equation is wider than its column (``book/_static/math.css`` makes such an
equation scroll rather than be cut off, but it is still a fault: break the equation); every image
loaded; every internal link resolves. Negative controls inject each fault into a built page and
show the checks catch it. Saves a screenshot of the forward-process chapter to
``_build/screenshot-forward.png``.
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


def _chromium(*extra_flags):
    """Headless Chromium with a 1280 px wide window and no network; yields the driver."""
    assert CHROMIUM and CHROMEDRIVER, ("install Debian's chromium and chromium-driver (apt-get install chromium "
                                       "chromium-driver; `make render` does it when it can)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--no-first-run", "--disable-component-update", "--disable-sync", "--disable-quic",
                 f"--user-data-dir={profile}", "--window-size=1280,2000", *extra_flags):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    # classic scroll bars (the default here): the page's own scroll bar narrows the column, the
    # strictest case for the width check
    yield from _chromium()


def _wait_for_mathjax(driver):
    # MathJax 3 exposes a startup promise; resolve it (or time out) before reading the DOM. On a
    # loaded machine the deferred MathJax script can still be starting when the page reports itself
    # loaded, so wait up to 30 s for MathJax.startup to appear before calling MathJax missing.
    driver.set_script_timeout(60)
    return driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const start = Date.now();
        (function poll() {
          if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
            MathJax.startup.promise.then(() => done('ok')).catch(e => done('error: ' + e));
          } else if (Date.now() - start > 30000) {
            done('no-mathjax');
          } else {
            setTimeout(poll, 100);
          }
        })();
    """)


# Raw TeX in the text a reader sees: every rendered text node of the body outside code, scripts and
# typeset maths (closed dropdowns are opened first, so hidden solutions are checked too; elements
# the screen never shows, such as the theme's print-only header, are not). Returns
# [{matches, context}] for each offending text node.
RAW_TEX_JS = r"""
const SKIP = 'pre, code, kbd, samp, script, style, noscript, template, textarea, mjx-container, svg';
const TEX = /\\[A-Za-z]+|\\[\[\]()]|[_^]\{|\$\$/g;
document.querySelectorAll('details').forEach(d => { d.open = true; });
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
const found = [];
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  const parent = node.parentElement;
  if (!parent || parent.closest(SKIP) || !parent.checkVisibility()) continue;
  const matches = [...node.textContent.matchAll(TEX)].map(m => m[0]);
  if (matches.length) {
    const text = (parent.closest('p, li, td, th, h1, h2, h3, h4, a, div') || parent).textContent;
    found.push({matches: matches, context: text.replace(/\s+/g, ' ').trim().slice(0, 160)});
  }
}
return found;
"""

# Display equations wider than their column: the typeset formula (the container's scrollWidth)
# against the room it has (its clientWidth), and the container's right edge against its div.math's.
# Returns [{label, content, room}] in CSS pixels.
WIDE_MATH_JS = r"""
document.querySelectorAll('details').forEach(d => { d.open = true; });
const found = [];
for (const el of document.querySelectorAll('mjx-container[display="true"]')) {
  const column = el.closest('div.math') || el.parentElement;
  const room = Math.min(el.clientWidth, column.getBoundingClientRect().right - el.getBoundingClientRect().left);
  if (el.scrollWidth > room + 1) {
    const label = column.id || (column.querySelector('.eqno') || {}).textContent || el.textContent.slice(0, 60);
    found.push({label: label, content: el.scrollWidth, room: Math.round(room)});
  }
}
return found;
"""


def _raw_tex(driver) -> list[dict]:
    return driver.execute_script(RAW_TEX_JS)


def _wide_equations(driver) -> list[dict]:
    return driver.execute_script(WIDE_MATH_JS)


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
    # the two layout checks below report every fault of the page at once, after the checks above
    problems = []
    for wide in _wide_equations(browser):
        problems.append(f"display equation {wide['label']!r} is {wide['content']} px wide in a {wide['room']} px "
                        "column at a 1280 px window: break it (aligned, split, shorter names)")
    raw_tex = {}
    for found in _raw_tex(browser):
        raw_tex.setdefault(found["context"], set()).update(found["matches"])
    for context, matches in raw_tex.items():
        problems.append(f"raw TeX {sorted(matches)} in the text a reader sees: {context!r}")
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
    assert not problems, f"{page}:\n" + "\n".join(problems)


def test_chapters_carry_a_colab_badge_to_their_notebook(server, browser):
    # the Colab edition (colab/X.ipynb: plain markdown, GPU runtime), not the MyST twin in notebooks/
    browser.get(server + "book/forward.html")
    hrefs = browser.execute_script("return [...document.querySelectorAll('.colab-badge a')].map(a => a.href)")
    assert hrefs and hrefs[0].startswith("https://colab.research.google.com/github/")
    assert hrefs[0].endswith("/colab/forward.ipynb")


# ------------------------------------------------------------------------------- negative controls
# Each new check must fail on a page that has the fault: inject it into a built page (same theme,
# same CSS, same MathJax) and run the same JavaScript.

def test_raw_tex_check_fails_on_injected_fault(server, browser):
    browser.get(server + "book/intro.html")
    assert _wait_for_mathjax(browser) == "ok"
    before = _raw_tex(browser)
    browser.execute_script(r"""
        const main = document.querySelector('main') || document.body;
        main.insertAdjacentHTML('beforeend',
          '<p>You should know <a href="#">The posterior q(x_{t-1} \\mid x_t, x_0)</a>.</p>' +
          '<p>A bare superscript x^{2} and a \\frac.</p>' +
          '<details><summary>Solution</summary><p>hidden \\tilde\\beta</p></details>' +
          '<div style="display: none">never on screen: \\nabla</div>' +
          '<pre>code may say \\mid and x_{t}</pre><p>inline <code>\\frac{a}{b}</code> is code</p>');
    """)
    found = _raw_tex(browser)
    new = [f for f in found if f not in before]
    assert {m for f in new for m in f["matches"]} == {"_{", "\\mid", "^{", "\\frac", "\\tilde", "\\beta"}, new
    assert any("The posterior q(x_{t-1}" in f["context"] for f in new), new
    assert not any("code may say" in f["context"] or "is code" in f["context"] for f in new), new


def _inject_equations(driver) -> None:
    """Add a display equation far wider than any column (id injected-wide) and a short one
    (injected-short) to the open page, typeset by the page's own MathJax."""
    long_sum = " + ".join(f"\\frac{{x_{{{i}}}}}{{y_{{{i}}}}}" for i in range(60))
    status = driver.execute_async_script(r"""
        const done = arguments[arguments.length - 1];
        const host = document.querySelector('div.math').parentElement;
        host.insertAdjacentHTML('beforeend',
          '<div class="math notranslate nohighlight" id="injected-wide">\\[' + arguments[0] + '\\]</div>' +
          '<div class="math notranslate nohighlight" id="injected-short">\\[a + b = c\\]</div>');
        MathJax.typesetPromise([document.getElementById('injected-wide'), document.getElementById('injected-short')])
          .then(() => done('ok')).catch(e => done('error: ' + e));
    """, long_sum)
    assert status == "ok", status


SCROLL_BOX_JS = """
    const el = document.querySelector('#injected-wide mjx-container');
    const style = getComputedStyle(el);
    return {overflow: style.overflowX, minWidth: style.minWidth, background: style.backgroundImage,
            right: el.getBoundingClientRect().right,
            column: document.getElementById('injected-wide').getBoundingClientRect().right,
            scrollbar: el.offsetHeight - el.clientHeight};
"""


def test_wide_equation_check_fails_on_injected_fault(server, browser):
    browser.get(server + "book/forward.html")
    assert _wait_for_mathjax(browser) == "ok"
    before = _wide_equations(browser)
    _inject_equations(browser)
    new = [w for w in _wide_equations(browser) if w not in before]
    assert [w["label"] for w in new] == ["injected-wide"], new    # the short one passes
    assert new[0]["content"] > 2 * new[0]["room"]
    # book/_static/math.css is applied: the wide equation is a scroll box inside its column, with a
    # shadow cue on the hidden side and a drawn scroll bar
    box = browser.execute_script(SCROLL_BOX_JS)
    assert box["overflow"] == "auto" and box["minWidth"] == "0px" and "gradient" in box["background"], box
    assert box["right"] <= box["column"] + 1 and box["scrollbar"] > 0, box


def test_wide_equation_scroll_bar_is_drawn_even_with_overlay_scroll_bars(server):
    # With overlay scroll bars (macOS, phones) the theme's own scroll box draws no bar until the
    # reader scrolls, so a wide equation looks cut off: the fault math.css removes. Show both.
    # Chromium 156 ignores --enable-features=OverlayScrollbar; its mobile emulation (DevTools protocol)
    # still switches to overlay scroll bars, as a phone shows them.
    for driver in _chromium():
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": 1280, "height": 2000, "deviceScaleFactor": 1, "mobile": True})
        driver.get(server + "book/forward.html")
        assert _wait_for_mathjax(driver) == "ok"
        _inject_equations(driver)
        with_css = driver.execute_script(SCROLL_BOX_JS)
        removed = driver.execute_script(
            "const ls = [...document.querySelectorAll('link[rel=stylesheet]')].filter(l => l.href.includes('/math.css'));"
            "ls.forEach(l => l.remove()); return ls.length;")
        without_css = driver.execute_script(SCROLL_BOX_JS)
    assert removed == 1
    assert with_css["scrollbar"] > 0, with_css
    assert without_css["scrollbar"] == 0 and "gradient" not in without_css["background"], without_css
