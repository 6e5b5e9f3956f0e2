"""report.html as a browser and a validator see it.

The validity check (html5lib in strict mode: any HTML5 parse error fails) runs everywhere
html5lib is installed (it is in the `dev` extra). The browser check renders the page in
headless Chromium when one is installed (skipped otherwise): no console messages at all (the
page has no scripts, so any message is a CSP violation or an error), and every <img> loaded.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crossmodal.metrics import classification_metrics
from crossmodal.report import write_report

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
NONCE = "crossmodal-test"
# Appended to a copy of the page: records, once everything has loaded, whether each image
# decoded. Allowed by a nonce added to the page's own CSP, which otherwise stays as it is.
CHECKER = f"""<script nonce="{NONCE}">
window.addEventListener("load", () => {{
  const ok = Array.from(document.images, (i) => i.complete && i.naturalWidth > 0 ? "1" : "0");
  document.body.setAttribute("data-images-loaded", ok.join(""));
}});
</script>"""


class Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.sources.append(dict(attrs).get("src") or "")


def image_sources(page: str) -> list[str]:
    parser = Images()
    parser.feed(page)
    return parser.sources


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A full report: 5 classes with awkward names, ablation, mistakes with a real image."""
    image_module = pytest.importorskip("PIL.Image")
    root = tmp_path_factory.mktemp("report")
    labels = ["cat", "dog & wolf", "<bird>", 'say "hi"', "ünïcode"]
    rng = np.random.default_rng(7)
    y_true = rng.integers(0, len(labels), 120)
    probs = rng.dirichlet(np.ones(len(labels)), 120)
    probs[np.arange(120), y_true] += 0.6
    probs /= probs.sum(axis=1, keepdims=True)
    metrics: dict[str, Any] = classification_metrics(y_true, probs, labels)
    picture = root / "ünï & <x>.png"
    image_module.new("L", (32, 32), 128).save(picture)
    metrics.update(modality="both", model="runs/m", data="data", num_skipped_files=0)
    metrics["ablation"] = {
        m: {k: v for k, v in metrics.items() if k != "reliability"}
        for m in ("both", "image", "audio")
    }
    metrics["mistakes"] = [
        {
            "image": str(picture),
            "audio": "a.wav",
            "true": "cat",
            "predicted": "<bird>",
            "confidence": 0.8,
        },
        {"image": None, "audio": "b.wav", "true": "ünïcode", "predicted": "cat", "confidence": 0.7},
    ]
    return write_report(metrics, root / "out")[3]


def test_report_html_is_valid_html5(report: Path) -> None:
    html5lib = pytest.importorskip("html5lib")
    page = report.read_text(encoding="utf-8")
    html5lib.HTMLParser(strict=True).parse(page)  # raises ParseError on any parse error
    with pytest.raises(html5lib.html5parser.ParseError):  # the check does catch errors
        html5lib.HTMLParser(strict=True).parse(page.replace("</table>", "</div>", 1))


def test_every_inline_image_decodes(report: Path) -> None:
    image_module = pytest.importorskip("PIL.Image")
    sources = image_sources(report.read_text(encoding="utf-8"))
    assert len(sources) == 4  # confusion matrix, F1 bars, reliability diagram, one thumbnail
    for src in sources:
        prefix, _, data = src.partition(",")
        assert prefix == "data:image/png;base64"
        with image_module.open(io.BytesIO(base64.b64decode(data, validate=True))) as image:
            image.load()


def find_browser() -> str | None:
    if os.environ.get("CROSSMODAL_CHROMIUM"):
        return os.environ["CROSSMODAL_CHROMIUM"]
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def render(browser: str, page: Path, profile: Path) -> tuple[str, list[str]]:
    """(DOM after load, console messages) from one headless run."""
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--no-first-run",
        "--no-default-browser-check",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        "--dump-dom",
        page.as_uri(),
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return proc.stdout, console


def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    browser = find_browser()
    if browser is None:
        pytest.skip("no Chromium or Chrome installed")
    page = report.read_text(encoding="utf-8")
    expected = len(image_sources(page))

    # The page exactly as written: no console message at all (errors, CSP violations).
    dom, console = render(browser, report, tmp_path / "profile-plain")
    assert console == []
    assert len(image_sources(dom)) == expected

    # A copy with a checker script: every image decoded (its own CSP still applies to images).
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page)
    assert csp is not None and "img-src data:" in csp.group(1)
    checked = page.replace(csp.group(1), f"{csp.group(1)}; script-src 'nonce-{NONCE}'", 1)
    checked = checked.replace("</body>", CHECKER + "\n</body>", 1)
    copy = tmp_path / "checked.html"
    copy.write_text(checked, encoding="utf-8")
    dom, console = render(browser, copy, tmp_path / "profile-checked")
    assert console == []
    loaded = re.search(r'data-images-loaded="([01]*)"', dom)
    assert loaded is not None, "the checker did not run"
    assert loaded.group(1) == "1" * expected
