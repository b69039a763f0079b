"""Write OUT/report.html and take a screenshot of it with headless Chromium (the README's picture).

    python scripts/screenshot_report.py OUT PNG [--width 1280] [--height PIXELS]

Needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver). The whole page
is taken unless --height cuts it. Fails if the page logs a console error or an image does not load.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the WebDriver client the tests use
from chromium import Chromium, missing  # noqa: E402

from acai.reproduce.report import write_report  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the --out folder of `acai reproduce`")
    parser.add_argument("png", help="the screenshot to write")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=None, help="cut the page at this height (default: all)")
    args = parser.parse_args()
    if missing():
        sys.exit(f"screenshot_report: {missing()}")
    page = write_report(args.out)
    with Chromium(width=args.width) as browser:
        browser.open(page.resolve().as_uri())
        errors = [entry["message"] for entry in browser.console() if entry["level"] == "SEVERE"]
        broken = browser.run("return [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).length")
        if errors or broken:
            sys.exit(f"screenshot_report: {page} has {len(errors)} console errors {errors[:3]} and {broken} broken images")
        browser.screenshot(args.png, args.width, args.height)
    print(f"wrote {args.png} of {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
