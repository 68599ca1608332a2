"""A small typed client for the Label Studio API, over label-studio-sdk's `LabelStudio`.

Everything the flows need from Label Studio goes through here (and what an annotator does, through
devtools/annotators.py, which wraps this client), so that every failure arrives as one of
inkloop's errors: LabelStudioUnavailableError (not running, a lost connection, a timeout, a 5xx; worth a retry),
LabelStudioAuthError (the token was refused) or LabelStudioError (any other refusal), never a raw traceback.

Facts this module relies on (verified against Label Studio 1.23.2, and kept true by tests/annotation):
- The label stream shows a task's prediction only when the prediction's model_version equals the project's.
- With "Uncertainty sampling" the label stream hands out the task whose current-model_version prediction has the
  lowest score first; tasks predicted by another model_version come after them, in random order.
- Label Studio's development server answers a request on a kept-alive connection about 40 ms late, so every
  request says `Connection: close` (about 4x faster for small requests).
"""

from __future__ import annotations

import contextlib
import heapq
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, cast

import httpx
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError
from label_studio_sdk.types import AllRolesProjectList

from annotation.labeling import UID_KEY, label_config
from inkloop.errors import LabelStudioAuthError, LabelStudioError, LabelStudioUnavailableError
from inkloop.settings import Settings

# The label stream: least confident first (see the module docstring); a skipped task goes to no one else, because
# a skip is an answer (the image is unreadable) and sync records it.
SAMPLING = "Uncertainty sampling"
SKIP_QUEUE = "IGNORE_SKIPPED"
# Task uids per filter request: about 17 KB of query string, well within what Label Studio's server accepts.
_UID_CHUNK = 500
_DM_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # the Data Manager's Datetime filter format (UTC)


class LabelStudioClient:
    """One Label Studio, one API token. Use as a context manager, or call close().

    Projects, storages, imports and the version go through the SDK. Tasks and annotations are read and written
    with plain requests on the SDK's own HTTP client: the SDK would turn them into its models, and parse_annotation
    reads Label Studio's JSON as Label Studio sends it; the task listings also page by task id (see _tasks).
    """

    def __init__(self, url: str, token: str, *, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self._timeout_s = timeout_s
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Connection": "close", "Authorization": f"Token {token}"},
            timeout=timeout_s,
            follow_redirects=True,
        )
        # Retries belong to the flows (Prefect task retries): retrying a POST here could import a chunk twice.
        self._sdk = LabelStudio(
            base_url=self.url, api_key=token, httpx_client=self._http, timeout=timeout_s, max_retries=0
        )

    @classmethod
    def from_settings(cls, settings: Settings, *, timeout_s: float = 30.0) -> LabelStudioClient:
        return cls(settings.label_studio_url, settings.label_studio_token.get_secret_value(), timeout_s=timeout_s)

    def as_user(self, token: str) -> LabelStudioClient:
        """A client for the same Label Studio acting as the user that owns `token`."""
        return LabelStudioClient(self.url, token, timeout_s=self._timeout_s)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LabelStudioClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LabelStudioClient({self.url!r})"

    # --- errors -------------------------------------------------------------------------------------------------

    @property
    def timeout_s(self) -> float:
        return self._timeout_s

    @contextlib.contextmanager
    def errors(self, what: str) -> Iterator[None]:
        """Translate httpx and SDK failures inside the block into inkloop's Label Studio errors."""
        try:
            yield
        except httpx.TimeoutException:
            raise LabelStudioUnavailableError(
                f"Label Studio at {self.url} did not answer {what} within {self._timeout_s:.0f} s"
            ) from None
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise LabelStudioUnavailableError(f"Label Studio at {self.url} is not reachable: {reason}") from None
        except ApiError as exc:
            raise self.refusal(exc.status_code or 0, exc.body, what) from None

    def refusal(self, status: int, body: Any, what: str) -> LabelStudioError:
        """The inkloop error for an HTTP `status` Label Studio answered `what` with."""
        detail = body
        if isinstance(body, Mapping):
            # Label Studio's errors say "Validation error" in detail and what was invalid in validation_errors.
            detail = " ".join(str(body[k]) for k in ("detail", "validation_errors") if body.get(k)) or body
        shown = " ".join(str(detail).split())[:400]
        if status in (401, 403):
            return LabelStudioAuthError(
                f"Label Studio at {self.url} refused the token (HTTP {status} to {what}: {shown}); "
                "set INKLOOP_LABEL_STUDIO_TOKEN to an API token of that Label Studio"
            )
        if status >= 500:
            return LabelStudioUnavailableError(f"Label Studio at {self.url} failed {what} (HTTP {status}): {shown}")
        return LabelStudioError(f"Label Studio at {self.url} refused {what} (HTTP {status}): {shown}")

    def request(self, method: str, path: str, what: str, **kwargs: Any) -> httpx.Response:
        """A request to Label Studio's API; any failure becomes one of inkloop's errors saying `what` failed."""
        with self.errors(what):
            response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                body: Any = response.json()
            except ValueError:
                body = response.text
            raise self.refusal(response.status_code, body, what)
        return response

    # --- the server ---------------------------------------------------------------------------------------------

    def version(self) -> str:
        """Label Studio's release, such as "1.23.2"."""
        with self.errors("GET /api/version"):
            return str(self._sdk.versions.get().release)

    def whoami(self) -> dict[str, Any]:
        """The user the token belongs to (id, email, ...)."""
        return dict(self.request("GET", "/api/current-user/whoami", "GET /api/current-user/whoami").json())

    def check(self) -> str:
        """Raise unless Label Studio answers and accepts the token; its version."""
        version = self.version()
        self.whoami()
        return version

    def server_time(self) -> datetime:
        """Label Studio's clock (from the HTTP Date header, whole seconds), for sync watermarks."""
        response = self.request("GET", "/health/", "GET /health/")
        try:
            return parsedate_to_datetime(response.headers["date"]).astimezone(UTC)
        except (KeyError, TypeError, ValueError):
            raise LabelStudioError(f"Label Studio at {self.url} sent no usable Date header") from None

    # --- projects -----------------------------------------------------------------------------------------------

    def find_project(self, title: str) -> int | None:
        """The id of the project titled exactly `title` (the oldest, should there be several), or None."""
        with self.errors("GET /api/projects"):
            # The SDK's list() wrapper returns a pager with its item type unbound; the items are project lists.
            projects = cast(Iterable[AllRolesProjectList], self._sdk.projects.list(title=title, page_size=100))
            found = [p.id for p in projects if p.title == title]
        return min((pid for pid in found if pid is not None), default=None)

    def project(self, project_id: int) -> dict[str, Any]:
        return dict(self.request("GET", f"/api/projects/{project_id}/", f"GET project {project_id}").json())

    def ensure_project(
        self,
        title: str,
        *,
        model_version: str | None,
        label_config_xml: str | None = None,
        description: str = "",
        image_root: str | Path | None = None,
    ) -> int:
        """The project titled `title`, created when missing, with inkloop's settings; its id. Safe to repeat.

        Sets the labeling config, `model_version` (None leaves it as it is; Label Studio shows annotators only the
        predictions of the project's model_version), the skip button, and the label stream order: least confident
        first (Uncertainty sampling, which orders by the prediction scores task_payload writes). With `image_root`
        (labeling.local_files_root of the store) it also makes sure Label Studio may serve the store's images.
        """
        wanted: dict[str, Any] = {
            # Label Studio stores the config without surrounding whitespace; sent so, it compares equal next time.
            "label_config": (label_config_xml or label_config().xml).strip(),
            "show_skip_button": True,
            "sampling": SAMPLING,
            "skip_queue": SKIP_QUEUE,
            "show_collab_predictions": True,  # "use predictions to pre-label tasks"
            "reveal_preannotations_interactively": False,
        }
        project_id = self.find_project(title)
        if project_id is None:
            if model_version is not None:
                wanted["model_version"] = model_version
            with self.errors(f"create project {title!r}"):
                created = self._sdk.projects.create(title=title, description=description, **wanted)
            if created.id is None:
                raise LabelStudioError(f"Label Studio at {self.url} created project {title!r} but sent no id")
            project_id = int(created.id)
        else:
            current = self.project(project_id)
            # Label Studio accepts a new model_version for an existing project only once the project holds
            # predictions of it; until then import_tasks switches the project when it imports them.
            if model_version is not None and model_version in self.model_versions(project_id):
                wanted["model_version"] = model_version
            changes = {key: value for key, value in wanted.items() if current.get(key) != value}
            if changes:
                self._patch_project(project_id, changes)
        if image_root is not None:
            self.ensure_local_storage(project_id, image_root)
        return project_id

    def set_model_version(self, project_id: int, model_version: str) -> None:
        """Show annotators the predictions of `model_version` (and order the label stream by their scores).

        Label Studio refuses (HTTP 400) a version the project holds no predictions of.
        """
        self._patch_project(project_id, {"model_version": model_version})

    def model_versions(self, project_id: int) -> dict[str, int]:
        """{model_version: number of predictions} in the project (the project's own version included, maybe at 0)."""
        what = f"GET the model versions of project {project_id}"
        versions = self.request("GET", f"/api/projects/{project_id}/model-versions/", what).json()
        return {str(k): int(v) for k, v in versions.items()} if isinstance(versions, dict) else {}

    def _patch_project(self, project_id: int, changes: Mapping[str, Any]) -> None:
        with self.errors(f"update project {project_id}"):
            self._sdk.projects.update(id=project_id, **changes)

    def ensure_local_storage(self, project_id: int, path: str | Path) -> int:
        """A local-files storage on `path` for the project, so Label Studio serves files under it; its id.

        Label Studio serves /data/local-files/?d=... only for files inside a storage of a project the user may
        see, and only under LOCAL_FILES_DOCUMENT_ROOT (of which `path` must be a proper subfolder). It is never
        synced: tasks are imported with their image URLs.
        """
        folder = str(Path(path).resolve())
        what = f"local storage {folder} for project {project_id}"
        with self.errors(what):
            for storage in self._sdk.import_storage.local.list(project=project_id):
                if storage.path and str(Path(storage.path)) == folder and storage.id is not None:
                    return int(storage.id)
            created = self._sdk.import_storage.local.create(
                project=project_id, path=folder, title="inkloop image store", use_blob_urls=False
            )
        if created.id is None:
            raise LabelStudioError(f"Label Studio at {self.url} created {what} but sent no id")
        return int(created.id)

    # --- tasks --------------------------------------------------------------------------------------------------

    def import_tasks(
        self,
        project_id: int,
        payloads: Sequence[Mapping[str, Any]],
        *,
        chunk_size: int = 500,
        show_predictions: bool = True,
    ) -> dict[str, int]:
        """Create tasks (task_payload's JSON), one request per `chunk_size`; {inkloop uid: Label Studio task id}.

        With `show_predictions`, the project then shows annotators the model_version these tasks were predicted
        by (when they all share one): the newest tasks come pre-filled, while open tasks predicted by an older
        version lose their pre-fill and come after them in the queue. Not idempotent by itself: a caller that may
        repeat an import asks task_ids_by_uid first.
        """
        created: dict[str, int] = {}
        for start in range(0, len(payloads), chunk_size):
            chunk = [dict(p) for p in payloads[start : start + chunk_size]]
            what = f"import of {len(chunk)} tasks into project {project_id}"
            with self.errors(what):
                # The SDK types `request` as its ImportApiRequest models but serializes plain task dicts the same.
                response = self._sdk.projects.import_tasks(
                    id=project_id,
                    request=chunk,  # type: ignore[arg-type]
                    return_task_ids=True,
                )
            ids = getattr(response, "task_ids", None)  # Community edition imports at once and lists the new ids
            if not isinstance(ids, list) or len(ids) != len(chunk):
                raise LabelStudioError(f"Label Studio at {self.url} answered the {what} without one id per task")
            # Label Studio creates the tasks in the order sent and returns their ids in that order.
            created.update({str(p["data"][UID_KEY]): int(i) for p, i in zip(chunk, ids, strict=True)})
        versions = {str(pr.get("model_version")) for p in payloads for pr in p.get("predictions", [])}
        if show_predictions and len(versions) == 1:
            (version,) = versions
            if self.project(project_id).get("model_version") != version:
                self.set_model_version(project_id, version)
        return created

    def task(self, task_id: int) -> dict[str, Any]:
        """One task with its data, every prediction and every annotation (completed_by as a user object)."""
        return dict(self.request("GET", f"/api/tasks/{task_id}/", f"GET task {task_id}").json())

    def get_json_or_none(self, path: str, what: str) -> dict[str, Any] | None:
        """GET a JSON object from the API; None when Label Studio answers 404 (nothing there)."""
        with self.errors(what):
            response = self._http.get(path)
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise self.refusal(response.status_code, response.text, what)
        return dict(response.json())

    # The task listings below use the API directly rather than the SDK's pager: they page by task id (keyset), one
    # page per request, which the SDK's page-number pager cannot do, and they hand back Label Studio's JSON as it
    # is, which parse_annotation reads.

    def _tasks(
        self, project_id: int, filters: list[dict[str, Any]], *, fields: str, include: str | None, page_size: int
    ) -> Iterator[dict[str, Any]]:
        """Tasks matching all `filters`, by increasing id. Paging by id never skips a task when others start or
        stop matching while it runs, as page numbers would."""
        last_id = 0
        while True:
            query = {
                "filters": {
                    "conjunction": "and",
                    "items": [
                        *filters,
                        {"filter": "filter:tasks:id", "operator": "greater", "type": "Number", "value": last_id},
                    ],
                },
                "ordering": ["tasks:id"],
            }
            params: dict[str, Any] = {
                "project": project_id,
                "query": json.dumps(query),
                "fields": fields,
                "page": 1,
                "page_size": page_size,
            }
            if include:
                params["include"] = include
            response = self.request("GET", "/api/tasks/", f"list tasks of project {project_id}", params=params)
            tasks = response.json().get("tasks")
            if not isinstance(tasks, list):
                raise LabelStudioError(f"Label Studio at {self.url} sent a task list without tasks")
            yield from tasks
            if len(tasks) < page_size:
                return
            last_id = int(tasks[-1]["id"])

    def task_ids_by_uid(self, project_id: int, uids: Iterable[str]) -> dict[str, int]:
        """{uid: task id} for the uids that have a task in the project (matched on data.inkloop_uid)."""
        wanted = sorted(set(uids))
        found: dict[str, int] = {}
        for start in range(0, len(wanted), _UID_CHUNK):
            chunk = wanted[start : start + _UID_CHUNK]
            # "in_list" is the Data Manager's own operator for a list of values (data_manager/managers.py).
            match = {"filter": f"filter:tasks:data.{UID_KEY}", "operator": "in_list", "type": "String", "value": chunk}
            for task in self._tasks(project_id, [match], fields="task_only", include="id,data", page_size=1000):
                uid = (task.get("data") or {}).get(UID_KEY)
                if isinstance(uid, str) and uid in chunk:
                    found.setdefault(uid, int(task["id"]))
        return found

    def annotated_tasks(
        self, project_id: int, *, updated_after: datetime | None = None, page_size: int = 100
    ) -> Iterator[dict[str, Any]]:
        """Tasks with at least one annotation (submitted or skipped), each with all its annotations, by task id.

        `updated_after` keeps only tasks changed since then (an annotation created, edited or skipped changes its
        task). Tasks changed while this runs may be missed, so take the next `updated_after` from server_time()
        read before the call, not from what was read.
        """
        # Label Studio 1.23 ignores `only_annotated`; total_annotations counts submitted annotations and
        # cancelled_annotations skipped ones, so two queries (by id, merged) find both.
        since = []
        if updated_after is not None:
            if updated_after.tzinfo is None:
                raise ValueError(f"updated_after must be timezone-aware, not {updated_after!r}")
            stamp = updated_after.astimezone(UTC).strftime(_DM_TIME_FORMAT)
            since = [{"filter": "filter:tasks:updated_at", "operator": "greater", "type": "Datetime", "value": stamp}]
        streams = [
            self._tasks(
                project_id,
                [{"filter": f"filter:tasks:{counter}", "operator": "greater", "type": "Number", "value": 0}, *since],
                fields="all",
                include=None,
                page_size=page_size,
            )
            for counter in ("total_annotations", "cancelled_annotations")
        ]
        yield from _merge_by_id(*streams)

    def get_file(self, url: str) -> bytes:
        """The bytes Label Studio serves at `url` (relative, such as task data's /data/local-files/?d=...)."""
        return self.request("GET", url, f"GET {url}").content


def _merge_by_id(*streams: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Merge task streams, each sorted by id, into one sorted stream without repeats."""
    last: int | None = None
    for task in heapq.merge(*streams, key=lambda t: int(t["id"])):
        if int(task["id"]) != last:
            last = int(task["id"])
            yield task
