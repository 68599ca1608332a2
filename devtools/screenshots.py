"""The documentation's screenshots, made from a home where `inkloop demo` ran, in headless Chromium (`make
screenshots`), never by hand, so they can be made again whenever a page changes:

- `web-page.png`: the endpoint's page after reading one of the demo's second-wave pages;
- `label-studio-queue.png`: the Label Studio project's queue (what the loop routed and waits for a person);
- `label-studio-task.png`: one task open, the model's reading pre-filled line by line beside the image;
- `gate-report.png`, `drift-report.png`: the top of the newest gate and drift reports.

It starts what is not running (an endpoint on a free port, the local Label Studio) and stops what it started.

    .venv/bin/python -m devtools.screenshots [--out docs/images]      # INKLOOP_HOME: the demo's home
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from PIL import Image

from annotation.client import LabelStudioClient
from db import repo
from db.ready import ready_session
from devtools import labelstudio
from inkloop.domain import TaskState
from inkloop.errors import InkloopError
from inkloop.settings import Settings, load_settings

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
WIDTH = 1280


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _newest(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime)
    if not found:
        raise InkloopError(f"no {pattern} in {folder}: run `make demo DEMO_ARGS=--once` first")
    return found[-1]


@contextmanager
def endpoint(settings: Settings) -> Iterator[str]:
    """`inkloop serve` on a free port of this home, for as long as the block runs."""
    from devtools.demo import start_endpoint  # imports the flows: only once there is something to photograph

    port = _free_port()
    process = start_endpoint(settings, port, settings.paths.demo / "screenshots-endpoint.log")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextmanager
def label_studio(settings: Settings) -> Iterator[labelstudio.LocalLabelStudio]:
    """The home's local Label Studio, started when it is not running (and then stopped at the end)."""
    ls = labelstudio.from_settings(settings)
    labelstudio.require_local(ls)
    _, started = labelstudio.up(ls)
    try:
        yield ls
    finally:
        if started:
            labelstudio.down(ls)


def _open_task(settings: Settings) -> tuple[int, str | None] | None:
    """A Label Studio task the loop routed that waits for a person (else an answered one) and the model version
    that pre-filled it, or None."""
    with ready_session(settings, write=False) as session:
        for state in (TaskState.open, TaskState.completed):
            tasks = repo.tasks_in_state(session=session, project=settings.label_studio_project, state=state)
            found = [(t.ls_task_id, t.model_version) for t in tasks if t.ls_task_id is not None]
            if found:
                return found[0]
    return None


def _check(path: Path) -> Path:
    """A screenshot that is not blank (a page that failed to render is one colour), kept small: 256 colours
    (about half the bytes; text and pages read the same)."""
    with Image.open(path) as image:
        low, high = image.convert("L").getextrema()
        small = image.convert("RGB").quantize(256)
    assert isinstance(low, int) and isinstance(high, int)  # one band: (min, max)
    if high - low < 50:
        raise InkloopError(f"{path} came out blank")
    small.save(path, optimize=True)
    return path


def take(settings: Settings, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise InkloopError("Debian's chromium is missing: run `make browser`")
    pages = sorted((settings.paths.demo / "traffic" / "second").glob("*.png"))
    if not pages:
        raise InkloopError(f"no demo traffic under {settings.paths.demo}: run `make demo DEMO_ARGS=--once` first")
    gate = _newest(settings.paths.gate_reports, "*.html")
    drift = _newest(settings.paths.drift_reports, "drift-*.html")
    out.mkdir(parents=True, exist_ok=True)
    made: list[Path] = []
    with sync_playwright() as playwright, ExitStack() as stack:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        stack.callback(browser.close)

        page = browser.new_page(viewport={"width": WIDTH, "height": 900})
        url = stack.enter_context(endpoint(settings))
        page.goto(url)
        page.set_input_files("#file", str(pages[0]))
        page.wait_for_selector("#result:not([hidden])", timeout=60_000)
        page.screenshot(path=str(out / "web-page.png"), full_page=True)
        made.append(out / "web-page.png")

        ls = stack.enter_context(label_studio(settings))
        with LabelStudioClient.from_settings(settings) as client:
            project = client.find_project(settings.label_studio_project)
        if project is None:
            raise InkloopError(f"no Label Studio project {settings.label_studio_project!r}: run the demo first")
        page = browser.new_page(viewport={"width": WIDTH, "height": 800})
        page.goto(f"{ls.url}/user/login/")
        page.fill("input[name=email]", ls.username)
        page.fill("input[name=password]", ls.password)
        page.click("button[type=submit]")
        page.wait_for_url(lambda current: "/user/login" not in current, timeout=30_000)
        page.goto(f"{ls.url}/projects/{project}/data")
        page.wait_for_selector(".dm-table-row, .dm-table__row, [class*=table-row]", timeout=60_000)
        page.wait_for_timeout(1500)  # thumbnails
        page.screenshot(path=str(out / "label-studio-queue.png"))
        made.append(out / "label-studio-queue.png")
        task = _open_task(settings)
        if task is not None:
            task_id, prefilled_by = task
            page.set_viewport_size({"width": WIDTH, "height": 900})
            page.goto(f"{ls.url}/projects/{project}/data?task={task_id}")
            page.wait_for_selector("textarea, .lsf-textarea, [class*=textarea]", timeout=60_000)
            if prefilled_by:  # show the model's reading, as a person opening the task first sees it
                tab = page.get_by_text(prefilled_by, exact=True)
                if tab.count():
                    tab.first.click()
                    page.mouse.move(600, 820)  # away from the tab, so its tooltip closes
            page.wait_for_timeout(2000)  # the image and the regions
            page.screenshot(path=str(out / "label-studio-task.png"))
            made.append(out / "label-studio-task.png")

        for name, report in (("gate-report.png", gate), ("drift-report.png", drift)):
            page = browser.new_page(viewport={"width": WIDTH, "height": 1100})
            page.goto(report.resolve().as_uri())
            page.wait_for_timeout(1000)
            page.screenshot(path=str(out / name))
            made.append(out / name)
    return [_check(path) for path in made]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path("docs/images"), help="Where the PNG files go.")
    args = parser.parse_args(argv)
    settings = load_settings()
    try:
        made = take(settings, args.out)
    except InkloopError as exc:
        print(f"screenshots: error: {exc}", file=sys.stderr)
        return 1
    for path in made:
        with Image.open(path) as image:
            print(f"{path}  {image.width}x{image.height}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
