"""Regenerate the screenshots in docs/images/ (run from the project root; needs chromium).

* ``seed-race-repro.png``: ``aibridge fuzz`` on the built-in scenario
  anthropic/rate-limit-after-tool-turn with ``--stream-initiation lazy`` (seed 1) finds the
  seed race; this is the page it writes beside the reproducer.
* ``session.png``: ``aibridge show --html`` on the built-in fixture of the same name.

Both are taken by headless Chromium (``tests/chromium.py``), the whole page at 1100 CSS
pixels wide.

    python scripts/make_view_screenshots.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.chromium import Chromium, find_chromium  # noqa: E402 (after the path is set)

OUT = ROOT / "docs" / "images"
SEED_CASE = "anthropic/rate-limit-after-tool-turn"
WIDTH = 1100


def aibridge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aibridge_cli", *args], capture_output=True, text=True, cwd=ROOT
    )


def main() -> None:
    executable = find_chromium()
    if executable is None:
        sys.exit("no chromium: apt-get install chromium")
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        fuzz = aibridge(
            "fuzz", "--scenario", SEED_CASE, "--stream-initiation", "lazy",
            "--iterations", "3", "--seed", "1", "--out", str(work / "fuzz"),
        )  # fmt: skip
        pages = [
            page
            for page in sorted((work / "fuzz").glob("repro-*.html"))
            if "FAIL malformed-body" in page.read_text(encoding="utf-8")
        ]
        if not pages:
            sys.exit(f"the seed race was not found:\n{fuzz.stdout}\n{fuzz.stderr}")
        session = work / "session.html"
        shown = aibridge("show", "--builtin", SEED_CASE, "--html", str(session))
        if shown.returncode:
            sys.exit(shown.stderr)
        with Chromium(executable, WIDTH, 800) as browser:
            for source, name in ((pages[0], "seed-race-repro.png"), (session, "session.png")):
                page = browser.open_page(source)
                if page.report.console_errors:
                    sys.exit(f"{source}: {page.report.console_errors}")
                page.screenshot(OUT / name, WIDTH)
                print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()
