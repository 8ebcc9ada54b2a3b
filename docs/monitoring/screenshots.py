"""Screenshots of TensorBoard's tabs for the README, taken in headless Chromium.

Run by ``make_screenshots.sh`` (which makes the runs and starts TensorBoard), or alone
against a TensorBoard that is already serving the runs::

    python docs/monitoring/screenshots.py --url http://127.0.0.1:6123 --out docs/monitoring

Needs Chromium, its driver (Debian: ``apt-get install chromium chromium-driver``) and
Selenium (``pip install selenium pillow``); these are tools for the pictures, not
dependencies of czsl. TensorBoard keeps a dashboard's smoothing and tag filter in the
URL (``#scalars&_smoothingWeight=0&tagFilter=...``) and "Ignore outliers in chart
scaling" in the browser's local storage (``_ignoreYOutliers``), which is set here
before the pages are loaded.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from urllib.parse import quote

#: name -> (URL hash, window size, {checkbox label: whether ticked}, the text to scroll
#: to or None). The two figures at their actual size sit one above the other.
PAGES = {
    "scalars_forgetting": ("scalars&_smoothingWeight=0&tagFilter=" + quote("step/forgetting$"),
                           (1600, 1000), {}, None),
    "custom_scalars_per_task": ("custom_scalars&_smoothingWeight=0", (1600, 1000), {},
                                "accuracy of each task, a line per run"),
    "images_matrices": ("images&tagFilter=" + quote("figures/(acc|forgetting)_matrix$")
                        + "&regexInput=" + quote("^sequential_classnorm$"), (1250, 1650),
                        {"Show actual image size": True}, None),
    # the table: what tells the runs apart ticked, settings equal in every run unticked
    "hparams_table": ("hparams", (1600, 1000),
                      {"model.class_norm": True, "regularizer": True,
                       "regularizer.ewc_lambda": True, "regularizer.alpha": False,
                       "regularizer.gamma": False, "regularizer.normalize": False,
                       "regularizer.lambda_reg": False, "czsl_version": False}, None),
}

#: Finds the element whose own text is ``arguments[0]`` anywhere below the page's shadow
#: roots (TensorBoard's dashboards are Polymer elements); ``arguments[1]``: "scroll" it
#: to the top, or ``true`` / ``false``: tick or untick the checkbox it labels (clicked
#: only if it is not so already). Returns whether it was found.
ACT_ON = """
const [wanted, action] = arguments;
function find(root) {
  for (const el of root.querySelectorAll('*')) {
    if (el.childElementCount === 0 && el.textContent.trim() === wanted) return el;
    if (el.shadowRoot) { const hit = find(el.shadowRoot); if (hit) return hit; }
  }
  return null;
}
let hit = find(document);
if (!hit) return false;
if (action === 'scroll') { hit.scrollIntoView({block: 'start'}); return true; }
let box = hit;
while (box && !/checkbox/i.test(box.tagName)) {
  box = box.parentNode || box.host;
  if (box && box.nodeType === 11) box = box.host;  // out of a shadow root
}
if (!box) return false;
const input = box.querySelector ? box.querySelector('input') : null;
const ticked = input ? input.checked : (box.checked || box.hasAttribute('checked'));
if (ticked !== action) (input || box).click();
return true;
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:6123")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--wait", type=float, default=15,
                        help="seconds to let a page load its data before acting on it")
    args = parser.parse_args()

    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                 "--window-size=1600,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.get(args.url + "/")
        driver.execute_script("window.localStorage.setItem('_ignoreYOutliers', 'false');")
        args.out.mkdir(parents=True, exist_ok=True)
        for name, (fragment, size, boxes, scroll_to) in PAGES.items():
            driver.set_window_size(*size)
            driver.get("about:blank")
            driver.get(f"{args.url}/#{fragment}")
            time.sleep(args.wait)
            for label, ticked in boxes.items():
                if not driver.execute_script(ACT_ON, label, ticked):
                    print(f"screenshots: no checkbox {label!r} on {name}")
            if scroll_to is not None and not driver.execute_script(ACT_ON, scroll_to, "scroll"):
                print(f"screenshots: {scroll_to!r} not found on {name}")
            time.sleep(4)
            path = args.out / f"{name}.png"
            driver.save_screenshot(str(path))
            # RGB (a 256-colour palette would band the figures' colour bars)
            Image.open(path).convert("RGB").save(path, optimize=True)
            print(f"screenshots: {path} ({path.stat().st_size // 1024} KB)")
    finally:
        driver.quit()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
