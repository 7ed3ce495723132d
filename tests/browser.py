"""Render an HTML report in headless Chromium and measure it (a test helper).

``render_report(html_path, tmp_path)`` loads a copy of the page with a small probe script added,
reads back from the dumped DOM whether every ``<img>`` decoded and whether anything is wider
than the window, and takes a screenshot (of the whole page by default). Tests skip when no Chromium is installed::

    pytestmark = pytest.mark.skipif(chromium_path() is None, reason="chromium not installed")
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
_MARK = "vbayes-probe"

# Runs after every image has loaded (the load event); writes its findings into the DOM as JSON.
_PROBE = """
<script>
window.addEventListener("load", function () {
  var doc = document.documentElement;
  var imgs = Array.prototype.slice.call(document.images);
  var offenders = [];
  var all = document.body.getElementsByTagName("*");
  function clipped(el) {
    for (var p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      var ox = getComputedStyle(p).overflowX;
      if (ox === "auto" || ox === "scroll" || ox === "hidden" || ox === "clip") return true;
    }
    return false;
  }
  for (var i = 0; i < all.length && offenders.length < 10; i++) {
    var r = all[i].getBoundingClientRect();
    if (r.right > doc.clientWidth + 1 && !clipped(all[i])) {
      offenders.push(all[i].tagName.toLowerCase() + "." + (all[i].className || "") + " right=" + Math.round(r.right));
    }
  }
  var out = {
    images: imgs.length,
    loaded: imgs.filter(function (im) { return im.complete && im.naturalWidth > 0; }).length,
    broken: imgs.filter(function (im) { return !(im.complete && im.naturalWidth > 0); })
               .map(function (im) { return (im.getAttribute("src") || "").slice(0, 60); }),
    natural_widths: imgs.map(function (im) { return im.naturalWidth; }),
    scroll_width: doc.scrollWidth,
    client_width: doc.clientWidth,
    scroll_height: doc.scrollHeight,
    offenders: offenders
  };
  var pre = document.createElement("pre");
  pre.id = "MARK";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
""".replace("MARK", _MARK)


def chromium_path() -> str | None:
    """Path of a Chromium/Chrome binary (``$VBAYES_CHROMIUM`` first), or ``None``."""
    override = os.environ.get("VBAYES_CHROMIUM")
    if override:
        return override if Path(override).exists() else shutil.which(override)
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _chromium(args: list[str], tmp_path: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    binary = chromium_path()
    if binary is None:
        raise RuntimeError("no chromium binary found")
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)  # fresh user-data dir
    cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-extensions", "--disable-sync", "--no-first-run", "--no-default-browser-check",
           "--mute-audio", "--hide-scrollbars", f"--user-data-dir={profile}", *args]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def render_report(html_path: str | os.PathLike[str], tmp_path: str | os.PathLike[str],
                  width: int = 1280, height: int = 900, full_page: bool = True,
                  timeout: float = 90.0) -> dict[str, Any]:
    """Render ``html_path`` at ``width`` CSS pixels in headless Chromium and measure it.

    Returns a dict with ``images`` (count), ``loaded`` (count decoded), ``all_images_loaded``,
    ``broken`` (src prefixes), ``natural_widths``, ``scroll_width``, ``client_width``,
    ``scroll_height``, ``overflows`` (page wider than the window), ``offenders`` (elements sticking
    out, for diagnosis) and ``screenshot`` (path of a full-page PNG in ``tmp_path``).
    The page is probed from a sibling copy (so relative links resolve as for the original),
    which is deleted afterwards; the original is not modified.
    """
    source = Path(html_path).resolve()
    tmp = Path(tmp_path)
    tmp.mkdir(parents=True, exist_ok=True)
    page = source.read_text(encoding="utf-8")
    probed = page.replace("</body>", _PROBE + "</body>", 1) if "</body>" in page else page + _PROBE
    fd, probe_name = tempfile.mkstemp(prefix=".probe-", suffix=".html", dir=source.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(probed)
    shot = tmp / f"{source.stem}-{width}px.png"
    try:
        done = _chromium([f"--window-size={width},{height}", "--virtual-time-budget=10000", "--dump-dom",
                          f"--screenshot={shot}", Path(probe_name).as_uri()], tmp, timeout)
    finally:
        os.unlink(probe_name)
    match = re.search(rf'<pre id="{_MARK}">(.*?)</pre>', done.stdout, flags=re.S)
    if match is None:
        raise RuntimeError(f"chromium did not report (exit {done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(html.unescape(match.group(1)))
    result["all_images_loaded"] = result["loaded"] == result["images"]
    result["overflows"] = result["scroll_width"] > result["client_width"]
    if full_page and result["scroll_height"] > height:
        full_height = min(int(result["scroll_height"]), 16000)
        _chromium([f"--window-size={width},{full_height}", "--virtual-time-budget=10000",
                   f"--screenshot={shot}", source.as_uri()], tmp, timeout)
    result["screenshot"] = shot if shot.exists() else None
    return result
