"""A simulated annotator: what a person does in Label Studio, done through its API.

Signing up through the organization's invite link, taking the next task of the label stream (least confident
first, with the model's transcription pre-filled, exactly as the labeling screen gets it), submitting an answer,
skipping an unreadable page, editing an answer already given. The tests drive Label Studio this way; the
full-loop demo and the label-efficiency benchmark use it to answer the queue the route flow fills.

Every call goes through LabelStudioClient, so failures arrive as inkloop's Label Studio errors.
"""

from __future__ import annotations

from typing import Any

import httpx

from annotation.client import LabelStudioClient
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
