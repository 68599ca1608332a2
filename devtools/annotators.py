"""A simulated annotator: what a person does in Label Studio, done through its API.

Signing up through the organization's invite link, taking the next task of the label stream (least confident
first, with the model's transcription pre-filled, exactly as the labeling screen gets it), submitting an answer,
skipping an unreadable page, editing an answer already given. The tests drive Label Studio this way; the
full-loop demo and the label-efficiency benchmark use it to answer the queue the route flow fills.

Every call goes through LabelStudioClient, so failures arrive as inkloop's Label Studio errors.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from annotation.client import LabelStudioClient
from annotation.labeling import Line, annotation_result, label_config, outline_box
from inkloop.errors import LabelStudioError


def create_account(admin: LabelStudioClient, email: str, *, password: str) -> str:
    """An annotator account, signed up through the organization's invite link as a person would; its API token.

    Safe to repeat: an existing account with this password is logged in instead. Uses the web forms, since
    Label Studio's API cannot set a password or read another user's token.
    """
    invite = admin.request("GET", "/api/invite", "GET /api/invite").json()
    with httpx.Client(base_url=admin.url, headers={"Connection": "close"}, timeout=admin.timeout_s) as browser:
        for page, params in (("/user/signup/", {"token": invite.get("token", "")}), ("/user/login/", {})):
            what = f"{page} as {email}"
            with admin.errors(what):
                browser.get(page, params=params)
                csrf = browser.cookies.get("csrftoken") or ""
                form = {"email": email, "password": password, "csrfmiddlewaretoken": csrf}
                response = browser.post(page, params=params, data=form, headers={"Referer": f"{admin.url}{page}"})
            if response.status_code not in (200, 302):
                raise admin.refusal(response.status_code, response.text[:300], what)
            if response.status_code == 302:  # the form redirects once the user is signed in
                break
        else:
            raise LabelStudioError(f"Label Studio at {admin.url} would neither sign up nor log in {email}")
        with admin.errors("GET /api/current-user/token"):
            response = browser.get("/api/current-user/token")
    if response.status_code != 200:
        raise admin.refusal(response.status_code, response.text, f"GET the token of {email}")
    return str(response.json()["token"])


class SimulatedAnnotator:
    """One annotator at work: the user `client`'s token belongs to. Use as a context manager, or close()."""

    def __init__(self, client: LabelStudioClient) -> None:
        self.client = client

    @classmethod
    def sign_up(cls, admin: LabelStudioClient, email: str, *, password: str) -> SimulatedAnnotator:
        """A new (or returning) annotator account in `admin`'s Label Studio, ready to work."""
        return cls(admin.as_user(create_account(admin, email, password=password)))

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> SimulatedAnnotator:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def next_task(self, project_id: int) -> dict[str, Any] | None:
        """The task the label stream gives this annotator next, as the labeling screen gets it (with only the
        predictions Label Studio shows), or None when nothing is left. Locks the task for this annotator."""
        return self.client.get_json_or_none(
            f"/api/projects/{project_id}/next/", f"GET the next task of project {project_id}"
        )

    def submit(self, task_id: int, *, result: list[dict[str, Any]], lead_time: float | None = None) -> dict[str, Any]:
        """Submit an answer (annotation_result's `result`); the annotation's JSON."""
        return self._annotate(task_id, {"result": result, "was_cancelled": False}, lead_time)

    def skip(self, task_id: int, *, lead_time: float | None = None) -> dict[str, Any]:
        """Skip the task (the Skip button: the page cannot be read); the annotation's JSON."""
        return self._annotate(task_id, {"result": [], "was_cancelled": True}, lead_time)

    def edit(
        self, annotation_id: int, *, result: list[dict[str, Any]], lead_time: float | None = None
    ) -> dict[str, Any]:
        """Change an answer already submitted; the annotation's JSON."""
        body: dict[str, Any] = {"result": result}
        if lead_time is not None:
            body["lead_time"] = lead_time
        what = f"update annotation {annotation_id}"
        return dict(self.client.request("PATCH", f"/api/annotations/{annotation_id}/", what, json=body).json())

    def _annotate(self, task_id: int, body: dict[str, Any], lead_time: float | None) -> dict[str, Any]:
        if lead_time is not None:
            body["lead_time"] = lead_time
        what = f"annotate task {task_id}"
        return dict(self.client.request("POST", f"/api/tasks/{task_id}/annotations/", what, json=body).json())


@dataclass(frozen=True)
class Prefill:
    """What a task's labeling screen shows pre-filled, as an annotator finds it: the paragraph box, and the lines
    (top to bottom: boxes, or outlines with their polygons) with their texts ("" for a line without one)."""

    paragraph: str
    lines: list[Line]

    @property
    def reading(self) -> str:
        """The model's reading the screen shows: the line texts top to bottom when they carry it, else the
        paragraph box (annotation/labeling.py pre-fills one of the two)."""
        if self.lines and all(line["text"] for line in self.lines):
            return "\n".join(line["text"] for line in self.lines)
        return self.paragraph


def prefill(task: dict[str, Any]) -> Prefill:
    """The screen a task opens on: the model's prediction as Label Studio shows it (none: an empty screen)."""
    config = label_config()
    predictions = task.get("predictions") or []
    if not predictions:
        return Prefill("", [])
    result = predictions[0]["result"]
    paragraph = next((r["value"]["text"][0] for r in result if r["from_name"] == config.paragraph), "")
    texts = {r["id"]: "\n".join(r["value"]["text"]) for r in result if r["from_name"] == config.line_text}
    lines: list[Line] = []
    for r in result:
        text = texts.get(r["id"], "")
        if r["from_name"] == config.lines:
            lines.append(Line(text=text, box=tuple(r["value"][k] for k in ("x", "y", "width", "height"))))
        elif r["from_name"] == config.outlines:
            outline = tuple((float(x), float(y)) for x, y in r["value"]["points"])
            lines.append(Line(text=text, box=outline_box(outline), polygon=outline))
    return Prefill(paragraph, sorted(lines, key=lambda line: (line["box"][1], line["box"][0])))


def prefilled(task: dict[str, Any]) -> tuple[str, list[tuple[float, ...]]]:
    """The model's reading a task's labeling screen shows pre-filled, and its line boxes (top to bottom; an
    outline's is its bounding box)."""
    shown = prefill(task)
    return shown.reading, [line["box"] for line in shown.lines]


def correction(task: dict[str, Any], text: str) -> list[dict[str, Any]]:
    """What an annotator submits when the page reads `text`, as the labeling screen's header asks: where the
    lines carry the reading and their regions match the text's lines, each line corrected in its region (a box or
    an outline, kept as it is; the paragraph box left as it was: empty); where they carry it but the regions are
    wrong, the regions deleted and the paragraph typed; where the paragraph box carries it, the paragraph corrected
    there (any regions left, without text)."""
    shown = prefill(task)
    rows = text.split("\n")
    in_lines = bool(shown.lines) and all(line["text"] for line in shown.lines)
    if in_lines and len(shown.lines) == len(rows):
        lines = [{**line, "text": row} for row, line in zip(rows, shown.lines, strict=True)]
        return annotation_result(paragraph=shown.paragraph, lines=lines)
    if in_lines:
        return annotation_result(paragraph=text)
    return annotation_result(paragraph=text, lines=[{**line, "text": ""} for line in shown.lines])


def slip(text: str, rng: random.Random) -> str:
    """`text` with one slip of a tired annotator: two neighbouring letters of one word swapped, or one dropped."""
    words = [(n, w) for n, w in enumerate(re.split(r"( |\n)", text)) if len(w) >= 3 and w.isalpha()]
    if not words:
        return text + "."
    parts = re.split(r"( |\n)", text)
    n, word = rng.choice(words)
    i = rng.randrange(len(word) - 1)
    parts[n] = word[:i] + word[i + 1] + word[i] + word[i + 2 :] if rng.random() < 0.5 else word[:i] + word[i + 1 :]
    return "".join(parts)


@dataclass(frozen=True)
class CrewPolicy:
    """How a simulated team of annotators behaves (shares of the tasks they answer)."""

    mistakes: float = 0.05  # answers with one slip in them
    skips: float = 0.03  # pages skipped as unreadable
    second_opinions: float = 0.1  # answered tasks a second annotator answers too (agreement is measured)
    seed: int = 0


@dataclass
class CrewResult:
    answered: int = 0
    skipped: int = 0
    with_mistakes: int = 0
    second_opinions: int = 0
    unknown: int = 0  # tasks showing a page the crew has no text for, left to a person


def work_queue(
    first: SimulatedAnnotator,
    second: SimulatedAnnotator,
    project_id: int,
    truth: Mapping[str, str],
    policy: CrewPolicy = CrewPolicy(),
    *,
    limit: int | None = None,
) -> CrewResult:
    """`first` works the project's label stream (least confident first) until it is empty or `limit` tasks are
    done: it corrects the pre-filled transcription to the page's text in `truth` (by the image's sha256), with a
    slip now and then, and skips a few pages; `second` answers some of the same tasks again, on its own.

    A task whose page `truth` does not know stops the work there (it stays for a person, as do the tasks after
    it). The choices come from `policy.seed`, so a rerun on the same queue behaves the same."""
    rng = random.Random(policy.seed)
    result = CrewResult()
    while limit is None or result.answered + result.skipped < limit:
        task = first.next_task(project_id)
        if task is None:
            break
        text = truth.get(task["data"].get("image_sha256", ""))
        if text is None:
            result.unknown += 1
            break
        if rng.random() < policy.skips:
            first.skip(task["id"], lead_time=round(rng.uniform(2, 6), 1))
            result.skipped += 1
            continue
        said = text
        if rng.random() < policy.mistakes:
            said = slip(text, rng)
            result.with_mistakes += 1
        first.submit(task["id"], result=correction(task, said), lead_time=round(rng.uniform(8, 40), 1))
        result.answered += 1
        if rng.random() < policy.second_opinions:
            again = slip(text, rng) if rng.random() < policy.mistakes * 4 else text
            second.submit(task["id"], result=correction(task, again), lead_time=round(rng.uniform(8, 40), 1))
            result.second_opinions += 1
    return result
