"""The report as a person sees it: opened from disk in headless Chromium (Debian's package)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ReportedRun

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
    "--hide-scrollbars", "--virtual-time-budget=10000",
]  # fmt: skip
# Appended to a copy of the page: records on <body> how many images decoded and table rows.
PROBE = """<script>
window.addEventListener('load', () => {
  const images = Array.from(document.images);
  const loaded = images.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.imagesLoaded = loaded + '/' + images.length;
  document.body.dataset.decisionRows =
    document.querySelectorAll('#decision-table tbody tr').length;
});
</script>"""

pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="chromium is not installed (.ci/run installs it; apt-get install chromium)",
)


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None, "chromium must be installed in CI"
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_report_opens_from_disk_with_every_image_and_the_decision_table(
    tmp_path: Path, fixture_report: ReportedRun
) -> None:
    html_path = fixture_report.run_dir / "report.html"
    probe = tmp_path / "report-probe.html"  # the page is self-contained: it opens from anywhere
    probe.write_text(html_path.read_text().replace("</body>", PROBE + "</body>"))

    dom = chromium(tmp_path / "profile-dom", "--dump-dom", probe.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    loaded = re.search(r'data-images-loaded="(\d+)/(\d+)"', dom.stdout)
    assert loaded, "the probe did not run"
    assert loaded.group(1) == loaded.group(2) and int(loaded.group(2)) >= 8
    rows = re.search(r'data-decision-rows="(\d+)"', dom.stdout)
    assert rows and int(rows.group(1)) == 4  # none, session-redis, jwt-HS256, jwt-ES256

    screenshot = tmp_path / "report-top.png"
    shot = chromium(tmp_path / "profile-shot", f"--screenshot={screenshot}",
                    "--window-size=1280,1400", html_path.as_uri())  # fmt: skip
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.stat().st_size > 20_000
