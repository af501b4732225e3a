"""Checks for scripts/page_check.sh: one page's console log, rendered DOM and screenshot.

python scripts/page_check_helper.py PAGE.html DOM.html CONSOLE.log SCREENSHOT.png
- console: no "Uncaught" and no "ERROR:CONSOLE" lines (Chromium's --enable-logging=stderr);
- DOM (Chromium's --dump-dom): a report page has its embedded PNGs (data:image/png, each a valid
  PNG); a show page has displaCy's entity marks; the DOM is the page (its <title> is there);
- screenshot: exists, is a PNG and is not a blank page.
"""
from __future__ import annotations

import base64
import re
import sys
from pathlib import Path


def main(page: str, dom_path: str, console_path: str, shot: str) -> int:
    problems = []
    console = Path(console_path).read_text(errors="replace")
    bad = [l for l in console.splitlines() if "Uncaught" in l or "ERROR:CONSOLE" in l]
    problems += [f"console: {l.strip()[:200]}" for l in bad]
    dom = Path(dom_path).read_text(errors="replace")
    source = Path(page).read_text(errors="replace")
    title = re.search(r"<title>(.*?)</title>", source, re.S)
    if not dom.strip() or (title and title.group(1) not in dom):
        problems.append("the DOM dump is empty or not this page")
    images = re.findall(r'<img[^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', dom)
    marks = dom.count("<mark")
    kind = "report" if 'id="drift"' in source else "show" if 'class="entities"' in source else "page"
    if kind == "report":
        expected = len(re.findall(r"<img ", source))
        if not images or len(images) != expected:
            problems.append(f"{len(images)} embedded images in the DOM, the page has {expected}")
        for i, b in enumerate(images):
            if base64.b64decode(b)[:8] != b"\x89PNG\r\n\x1a\n":
                problems.append(f"image {i} is not a PNG")
    if kind == "show" and marks == 0 and "<mark" in source:
        problems.append("no entity marks in the DOM")
    p = Path(shot)
    if not p.is_file() or p.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
        problems.append(f"no screenshot at {shot}")
    else:
        import matplotlib.image as mpimg

        img = mpimg.imread(str(p))
        if img.std() < 0.01:
            problems.append("the screenshot is blank")
    print(f"{page}: {kind}, {len(images)} images, {marks} entity marks, console errors {len(bad)}, screenshot {shot}"
          + ("" if not problems else "\n  " + "\n  ".join(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
