"""What one paragraph looks like inside Label Studio, in both directions.

`task_payload` builds the JSON of a task with the model's reading attached as a pre-annotation, and
`parse_annotation` turns an annotator's answer back into text, lines and flags. Tag names (`paragraph`,
`line_text`, ...) are read from label_config.xml, parsed once, so the XML is the only place they are written: a
renamed tag there changes what is sent and what is read here, never one without the other.

A line is a box (a rectangle) or an outline (a polygon, as imported ground truth draws them and as the endpoint
logs the segmenter's lines since migration 0008, in percent of the image like a box). A parsed outline keeps its
polygon and has a box too, its bounds, so what reads only boxes reads both.

One truth on the screen: the pre-annotation holds the model's reading once, in the line texts when every line box
has its text (they are then the reading, top to bottom), else in the paragraph box. Pre-filling both (the first
design) left a completed task showing the corrected lines beside the model's uncorrected paragraph, and a reviewer
could not tell which was the label. The paragraph box under pre-filled lines starts empty; text typed there is the
label (inkloop.labels.derive_label reads answers of either design).
"""

from __future__ import annotations

import functools
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, NotRequired, TypedDict
from urllib.parse import quote

from inkloop.errors import InvalidTaskError, MalformedAnnotationError
from inkloop.labels import DerivedLabel, derive_label, rows
from inkloop.store import validate_key

LABEL_CONFIG_FILE = Path(__file__).with_name("label_config.xml")
# The field of task data that carries inkloop's id for the task (annotation_tasks.uid): how a crashed route flow
# finds out, from Label Studio alone, which of its tasks were created.
UID_KEY = "inkloop_uid"
# Task data keys task_payload writes itself; `meta` may not overwrite them.
_RESERVED_DATA_KEYS = frozenset({UID_KEY, "reason", "priority"})

Box = tuple[float, float, float, float]  # x, y, width, height in percent of the image (Label Studio's units)
Point = tuple[float, float]  # x, y in percent of the image
Outline = tuple[Point, ...]  # a line's polygon, 3 points or more
# PostgreSQL refuses NUL (U+0000) in text and SQLite keeps it, so an answer holding one would fail sync on one
# database and be stored on the other; a lone surrogate (a JSON "\ud800" escape: no character at all) neither
# driver can encode, and db/guard.py refuses both on write, so one such answer would stop every later sync at
# its page. parse_annotation drops them, on both databases alike, and counts them (sync's summary says how many
# answers had any). Dropping is right for an annotator's answer, rather than refusing it or sending the task to
# review: no keyboard types either into Label Studio's text boxes (they arrive only through the API or a paste of
# binary junk), they draw nothing, so the label a person sees in Label Studio is exactly the text kept without
# them, and a review would ask someone to judge a difference no one can see.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class Line(TypedDict):
    """One line of handwriting: its text and its box (x, y, width, height in percent of the image); a line drawn as
    an outline also has its `polygon` (points in percent of the image), and its box is the polygon's bounds."""

    text: str
    box: Box
    polygon: NotRequired[Outline]


@dataclass(frozen=True)
class LabelConfig:
    """The names inkloop needs from a labeling config. Build it with parse_label_config."""

    xml: str = field(repr=False)
    image: str  # <Image name=...>
    image_key: str  # the task data key the image reads ($image -> "image")
    lines: str  # <RectangleLabels name=...>: a box per line
    line_label: str  # its one <Label value=...>
    outlines: str  # <PolygonLabels name=...>: an outline per line (imported pages' polygons)
    outline_label: str  # its one <Label value=...>
    line_text: str  # <TextArea perRegion="true" name=...>: the text of one line (box or outline)
    paragraph: str  # <TextArea name=...> (not per region): the whole paragraph
    quality: str  # <Choices name=...>
    unreadable: str  # its <Choice value=...> meaning "this image cannot be read"


@dataclass(frozen=True)
class ParsedAnnotation:
    """An annotator's answer to one task, as inkloop keeps it."""

    ls_annotation_id: int
    ls_task_id: int
    uid: str  # data["inkloop_uid"] of the task
    annotator: str  # the annotator's email as Label Studio reports it, else their Label Studio user id
    text: str  # the paragraph box; when it was left empty, the line texts top to bottom, one per line
    paragraph: str  # the paragraph box as submitted (may be empty)
    lines: tuple[Line, ...]  # top to bottom
    unreadable: bool
    skipped: bool  # the annotator pressed Skip (Label Studio's was_cancelled)
    lead_time_s: float | None
    created_at: datetime  # timezone-aware UTC
    updated_at: datetime  # timezone-aware UTC; changes when the annotator edits a submitted answer
    nul_characters: int = 0  # NULs (and lone surrogates) dropped from its texts and annotator (see UNSTORABLE)

    def raw(self) -> dict[str, Any]:
        """The answer as submitted (less any NUL), kept beside the label derived from it: {"paragraph", "lines"}.
        JSON's shapes (lists), so that it compares equal to what a database gives back."""
        return {"paragraph": self.paragraph, "lines": [_json_line(line) for line in self.lines]}

    def label(self, prediction: str | None) -> DerivedLabel:
        """What the annotator meant, given the model reading the screen was pre-filled with (inkloop.labels)."""
        return derive_label(paragraph=self.paragraph, lines=self.lines, prediction=prediction)


def parse_label_config(xml: str) -> LabelConfig:
    """Find the tags inkloop needs in a labeling config; InvalidTaskError says which one is missing or doubled."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise InvalidTaskError(f"labeling config is not well-formed XML: {exc}") from None

    def only(elements: list[ET.Element], what: str) -> ET.Element:
        if len(elements) != 1:
            raise InvalidTaskError(f"labeling config needs exactly one {what}, found {len(elements)}")
        return elements[0]

    def name(el: ET.Element) -> str:
        value = el.get("name") or ""
        if not value:
            raise InvalidTaskError(f"labeling config: <{el.tag}> has no name")
        return value

    image = only(list(root.iter("Image")), "<Image>")
    image_value = image.get("value") or ""
    if not re.fullmatch(r"\$[A-Za-z_][A-Za-z0-9_]*", image_value):
        raise InvalidTaskError(f"labeling config: <Image value={image_value!r}> must name a task field like $image")
    lines = only(list(root.iter("RectangleLabels")), "<RectangleLabels> (line boxes)")
    outlines = only(list(root.iter("PolygonLabels")), "<PolygonLabels> (line outlines)")
    quality = only(list(root.iter("Choices")), "<Choices> (the unreadable flag)")
    text_areas = list(root.iter("TextArea"))
    per_region = [el for el in text_areas if (el.get("perRegion") or "").lower() == "true"]
    whole = [el for el in text_areas if el not in per_region]
    return LabelConfig(
        xml=xml,
        image=name(image),
        image_key=image_value[1:],
        lines=name(lines),
        line_label=only(list(lines.iter("Label")), "<Label> in <RectangleLabels>").get("value") or "",
        outlines=name(outlines),
        outline_label=only(list(outlines.iter("Label")), "<Label> in <PolygonLabels>").get("value") or "",
        line_text=name(only(per_region, '<TextArea perRegion="true"> (the text of a line)')),
        paragraph=name(only(whole, "<TextArea> without perRegion (the paragraph)")),
        quality=name(quality),
        unreadable=only(list(quality.iter("Choice")), "<Choice> in <Choices>").get("value") or "",
    )


@functools.cache
def label_config() -> LabelConfig:
    """The shipped labeling config (annotation/label_config.xml), parsed on first use."""
    return parse_label_config(LABEL_CONFIG_FILE.read_text(encoding="utf-8"))


# --- inkloop -> Label Studio ------------------------------------------------------------------------------------


def _finite(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidTaskError(f"{what} must be a number, not {value!r}") from None
    if not math.isfinite(number):
        raise InvalidTaskError(f"{what} must be finite, not {value!r}")
    return number


def _clip_box(box: Any, what: str) -> Box:
    """The box clipped to the image (a segmenter's rounding may reach past an edge); an empty box is an error."""
    if not isinstance(box, Sequence) or isinstance(box, str) or len(box) != 4:
        raise InvalidTaskError(f"{what} must be (x, y, width, height) in percent, not {box!r}")
    x, y, w, h = (_finite(v, what) for v in box)
    left, top = max(0.0, x), max(0.0, y)
    right, bottom = min(100.0, x + w), min(100.0, y + h)
    if right <= left or bottom <= top:
        raise InvalidTaskError(f"{what} {tuple(box)!r} has no area inside the image (percent units, 0..100)")
    return (left, top, right - left, bottom - top)


def outline_box(points: Sequence[Point]) -> Box:
    """The bounding box of a polygon (x, y, width, height), in the polygon's units."""
    xs, ys = [x for x, _ in points], [y for _, y in points]
    return (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))


def _clip_outline(points: Any, what: str) -> Outline:
    """The polygon with each point moved onto the image (an outline traced to the edge may round past it); a
    polygon with no area inside the image is an error."""
    if not isinstance(points, Sequence) or isinstance(points, str) or len(points) < 3:
        raise InvalidTaskError(f"{what} must be 3 or more [x, y] points in percent, not {points!r}")
    clipped = []
    for point in points:
        if not isinstance(point, Sequence) or isinstance(point, str) or len(point) != 2:
            raise InvalidTaskError(f"{what} must be [x, y] points in percent, not a point {point!r}")
        x, y = (_finite(v, what) for v in point)
        clipped.append((min(max(x, 0.0), 100.0), min(max(y, 0.0), 100.0)))
    _, _, width, height = outline_box(clipped)
    if width <= 0 or height <= 0:
        raise InvalidTaskError(f"{what} has no area inside the image (percent units, 0..100)")
    return tuple(clipped)


@dataclass(frozen=True)
class _Shape:
    """A checked line: its text, its box, and its outline when it has one (the box is then the outline's bounds)."""

    text: str
    box: Box
    outline: Outline | None = None


def _checked_lines(lines: Sequence[Mapping[str, Any]]) -> list[_Shape]:
    """Each line's text and its shape clipped to the image: its polygon when it has one, else its box;
    InvalidTaskError names a malformed one."""
    checked = []
    for i, line in enumerate(lines):
        if not isinstance(line, Mapping) or not isinstance(line.get("text"), str):
            raise InvalidTaskError(f"line {i} must be {{'text': str, 'box': (x, y, w, h)}}, not {line!r}")
        if line.get("polygon"):
            outline = _clip_outline(line["polygon"], f"line {i} polygon")
            checked.append(_Shape(line["text"], outline_box(outline), outline))
        else:
            checked.append(_Shape(line["text"], _clip_box(line.get("box"), f"line {i} box")))
    return checked


def _line_results(config: LabelConfig, lines: Sequence[_Shape], *, empty_texts: bool) -> list[dict[str, Any]]:
    """A region per line (a box, or an outline for a line with a polygon) with its text; a line without text gets
    an empty text item only with `empty_texts` (a pre-annotation's empty line field, as the screen has always shown
    it), else it is a region alone (what the screen submits for a line field left empty)."""
    result: list[dict[str, Any]] = []
    for i, line in enumerate(lines):
        geometry: dict[str, Any]
        if line.outline is not None:
            geometry = {"points": [list(point) for point in line.outline], "closed": True}
            tag, kind = config.outlines, "polygonlabels"
            labels = {kind: [config.outline_label]}
        else:
            x, y, w, h = line.box
            geometry = {"x": x, "y": y, "width": w, "height": h, "rotation": 0}
            tag, kind = config.lines, "rectanglelabels"
            labels = {kind: [config.line_label]}
        # A region and its text are one region in Label Studio because they share an id.
        region = f"line-{i + 1}"
        result.append(
            {"id": region, "from_name": tag, "to_name": config.image, "type": kind, "value": {**geometry, **labels}}
        )
        if line.text or empty_texts:
            result.append(
                {
                    "id": region,
                    "from_name": config.line_text,
                    "to_name": config.image,
                    "type": "textarea",
                    "value": {**geometry, "text": [line.text]},
                }
            )
    return result


def lines_carry_reading(text: str, lines: Sequence[tuple[str, Box]]) -> bool:
    """Whether the line texts, top to bottom, are the whole reading `text` (every box has its line): then they
    alone pre-fill the screen. Otherwise (no lines, a box without text, texts that are not the reading) the
    paragraph box carries it and the boxes come with empty texts."""
    ordered = [" ".join(t.split()) for t, box in sorted(lines, key=lambda line: (line[1][1], line[1][0]))]
    return bool(ordered) and all(ordered) and ordered == rows(text)


def _paragraph_result(config: LabelConfig, text: str) -> dict[str, Any]:
    if not isinstance(text, str):
        raise InvalidTaskError(f"paragraph text must be a string, not {text!r}")
    return {
        "id": "paragraph",
        "from_name": config.paragraph,
        "to_name": config.image,
        "type": "textarea",
        "value": {"text": [text]},
    }


def task_payload(
    *,
    uid: str,
    image_url: str,
    text: str,
    lines: Sequence[Mapping[str, Any]],
    score: float,
    model_version: str,
    priority: float,
    reason: str,
    meta: Mapping[str, Any] | None = None,
    config: LabelConfig | None = None,
) -> dict[str, Any]:
    """The JSON that imports one task: the image and inkloop's fields as data, the model's reading as a prediction.

    `lines` are the model's lines, `{"text": str, "box": (x, y, width, height)}` in percent of the image, or
    `{"text": str, "polygon": [[x, y], ...]}` (also percent) for a line drawn as an outline, which is pre-filled as
    an outline rather than a box (a line with both is an outline). The reading is pre-filled once (see the
    module's docstring): in the line texts when they are the whole of `text`, else in the paragraph box (possibly
    empty), beside the regions with empty texts. `meta` adds fields to the
    task data (request id, image key, ...), which the Data Manager shows as columns. Label Studio shows the
    prediction to an annotator only while the project's model_version equals `model_version` (see
    client.ensure_project).
    """
    config = config or label_config()
    if not isinstance(uid, str) or not uid.strip():
        raise InvalidTaskError(f"task uid must be a non-empty string, not {uid!r}")
    if not isinstance(image_url, str) or not image_url:
        raise InvalidTaskError(f"task {uid}: image_url must be a non-empty string, not {image_url!r}")
    if not isinstance(model_version, str) or not model_version:
        raise InvalidTaskError(f"task {uid}: model_version must be a non-empty string, not {model_version!r}")
    confidence = _finite(score, f"task {uid}: score")
    if not 0.0 <= confidence <= 1.0:
        raise InvalidTaskError(f"task {uid}: score must be within 0..1, not {score!r}")
    extra = dict(meta or {})
    clash = sorted(_RESERVED_DATA_KEYS.union({config.image_key}).intersection(extra))
    if clash:
        raise InvalidTaskError(f"task {uid}: meta may not set {', '.join(clash)} (task_payload writes them)")
    data = {
        config.image_key: image_url,
        UID_KEY: uid,
        "reason": reason,
        "priority": _finite(priority, f"task {uid}: priority"),
        **extra,
    }
    if not isinstance(text, str):
        raise InvalidTaskError(f"task {uid}: text must be a string, not {text!r}")
    checked = _checked_lines(lines)
    in_lines = lines_carry_reading(text, [(line.text, line.box) for line in checked])
    shown = checked if in_lines else [_Shape("", line.box, line.outline) for line in checked]
    result = _line_results(config, shown, empty_texts=True)
    if not in_lines:
        result.append(_paragraph_result(config, text))
    return {"data": data, "predictions": [{"model_version": model_version, "score": confidence, "result": result}]}


def annotation_result(
    *,
    paragraph: str,
    lines: Sequence[Mapping[str, Any]] = (),
    unreadable: bool = False,
    config: LabelConfig | None = None,
) -> list[dict[str, Any]]:
    """The `result` an annotator's submission holds: line boxes (or outlines, for lines with a "polygon") with
    their texts, the paragraph, the flag. An empty field is left out, as the labeling screen leaves it out: a region
    without text is a region alone, and an empty paragraph box gives nothing."""
    config = config or label_config()
    if not isinstance(paragraph, str):
        raise InvalidTaskError(f"paragraph text must be a string, not {paragraph!r}")
    result = _line_results(config, _checked_lines(lines), empty_texts=False)
    if paragraph.strip():
        result.append(_paragraph_result(config, paragraph))
    if unreadable:
        result.append(
            {
                "id": "quality",
                "from_name": config.quality,
                "to_name": config.image,
                "type": "choices",
                "value": {"choices": [config.unreadable]},
            }
        )
    return result


def local_files_root(store_root: str | Path) -> Path:
    """The folder a Label Studio local-files storage must name so that it may serve the store's objects."""
    return Path(store_root).resolve() / "objects"


def image_url_for(store_root: str | Path, key: str, *, document_root: str | Path | None = None) -> str:
    """The URL Label Studio serves a store object at: `/data/local-files/?d=<path under its document root>`.

    The document root is Label Studio's LOCAL_FILES_DOCUMENT_ROOT; the local one inkloop starts uses the store
    folder itself, which is the default here.
    """
    validate_key(key)
    root = Path(document_root if document_root is not None else store_root).resolve()
    path = local_files_root(store_root) / key[:2] / key[2:4] / key
    try:
        relative = path.relative_to(root)
    except ValueError:
        raise InvalidTaskError(
            f"store object {path} lies outside Label Studio's document root {root}; "
            "LOCAL_FILES_DOCUMENT_ROOT must contain the store"
        ) from None
    return f"/data/local-files/?d={quote(str(PurePosixPath(relative)), safe='/')}"


# --- Label Studio -> inkloop ------------------------------------------------------------------------------------


def _timestamp(value: Any, what: str) -> datetime:
    if not isinstance(value, str) or not value:
        raise MalformedAnnotationError(f"{what} must be an ISO 8601 timestamp, not {value!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise MalformedAnnotationError(f"{what} is not an ISO 8601 timestamp: {value!r}") from None
    # Label Studio writes UTC with a Z; a naive value is taken to be UTC too.
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


_USERNAME = re.compile(r"(?:^|\s)(\S+@\S+), (\d+)$")


def _annotator(annotation: Mapping[str, Any], where: str) -> str:
    """Label Studio sends `completed_by` as a user id (task lists) or a user object (a single task)."""
    user = annotation.get("completed_by")
    if isinstance(user, Mapping):
        email, user_id = user.get("email"), user.get("id")
        if isinstance(email, str) and email:
            return email
        if isinstance(user_id, int):
            return str(user_id)
    elif isinstance(user, int) and not isinstance(user, bool):
        # "created_username" is "<first> <last> <email>, <id>"; trust its email only for the same id.
        match = _USERNAME.search(str(annotation.get("created_username") or "").strip())
        if match and int(match.group(2)) == user:
            return match.group(1)
        return str(user)
    raise MalformedAnnotationError(f"{where}: completed_by must be a user id or a user, not {user!r}")


def _texts(value: Mapping[str, Any], where: str) -> list[str]:
    texts = value.get("text", [])
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise MalformedAnnotationError(f"{where}: text must be a list of strings, not {texts!r}")
    return texts


def _geometry(value: Mapping[str, Any], where: str) -> Box:
    try:
        box = tuple(float(value[k]) for k in ("x", "y", "width", "height"))
    except (KeyError, TypeError, ValueError):
        shown = {k: value.get(k) for k in ("x", "y", "width", "height")}
        raise MalformedAnnotationError(f"{where}: a line box needs numeric x, y, width, height, not {shown}") from None
    return box  # type: ignore[return-value]


def _outline(value: Mapping[str, Any], where: str) -> Outline:
    points = value.get("points")
    try:
        if not isinstance(points, list) or len(points) < 3:
            raise TypeError
        return tuple((float(x), float(y)) for x, y in points)
    except (TypeError, ValueError):
        shown = f"{points!r}"[:200]
        raise MalformedAnnotationError(
            f"{where}: a line outline needs 3 or more numeric [x, y] points, not {shown}"
        ) from None


def _json_line(line: Line) -> dict[str, Any]:
    """A line as JSON holds it (lists, not tuples)."""
    out: dict[str, Any] = {**line, "box": list(line["box"])}
    if "polygon" in line:
        out["polygon"] = [list(point) for point in line["polygon"]]
    return out


def parse_annotation(
    annotation: Mapping[str, Any], task: Mapping[str, Any], *, config: LabelConfig | None = None
) -> ParsedAnnotation:
    """An annotation (as Label Studio returns it) of `task`, as inkloop keeps it.

    A missing or wrongly typed field raises MalformedAnnotationError naming the task, the annotation and the field.
    Result items of tags inkloop does not know are ignored, so a config with extra tags still parses.
    """
    config = config or label_config()
    if not isinstance(annotation, Mapping) or not isinstance(task, Mapping):
        raise MalformedAnnotationError(f"an annotation and its task must be objects, not {annotation!r}, {task!r}")
    task_id, annotation_id = task.get("id"), annotation.get("id")
    if not isinstance(task_id, int) or isinstance(task_id, bool):
        raise MalformedAnnotationError(f"task id must be an integer, not {task_id!r}")
    where = f"Label Studio task {task_id}, annotation {annotation_id}"
    if not isinstance(annotation_id, int) or isinstance(annotation_id, bool):
        raise MalformedAnnotationError(f"{where}: annotation id must be an integer, not {annotation_id!r}")
    if annotation.get("task") not in (None, task_id):
        raise MalformedAnnotationError(f"{where}: the annotation belongs to task {annotation.get('task')!r}")
    data = task.get("data")
    uid = data.get(UID_KEY) if isinstance(data, Mapping) else None
    if not isinstance(uid, str) or not uid:
        raise MalformedAnnotationError(f"{where}: task data has no {UID_KEY} (not a task inkloop created?)")
    result = annotation.get("result") or []
    if not isinstance(result, list):
        raise MalformedAnnotationError(f"{where}: result must be a list, not {type(result).__name__}")

    boxes: dict[str, Box] = {}
    outlines: dict[str, Outline] = {}
    line_texts: dict[str, list[str]] = {}
    paragraph: list[str] = []
    unreadable = False
    nul = 0

    def texts(value: Mapping[str, Any], spot: str) -> list[str]:
        nonlocal nul
        found = _texts(value, spot)
        nul += sum(len(UNSTORABLE.findall(text)) for text in found)
        return [UNSTORABLE.sub("", text) for text in found]

    for n, item in enumerate(result):
        if not isinstance(item, Mapping) or not isinstance(item.get("value"), Mapping):
            raise MalformedAnnotationError(f"{where}: result item {n} must be an object with a value, not {item!r}")
        source, value, region = item.get("from_name"), item["value"], str(item.get("id", f"#{n}"))
        spot = f"{where}, result item {n} ({source})"
        if source == config.lines:
            boxes[region] = _geometry(value, spot)
        elif source == config.outlines:
            outlines[region] = _outline(value, spot)
        elif source == config.line_text:
            line_texts.setdefault(region, []).extend(texts(value, spot))
            # A text item repeats its region's shape: enough to place a line whose shape item is missing.
            if region not in boxes and region not in outlines:
                if "points" in value:
                    outlines[region] = _outline(value, spot)
                elif "x" in value:
                    boxes[region] = _geometry(value, spot)
        elif source == config.paragraph:
            paragraph.extend(texts(value, spot))
        elif source == config.quality:
            choices = value.get("choices", [])
            unreadable = unreadable or (isinstance(choices, list) and config.unreadable in choices)

    def read_line(region: str) -> Line:
        text = "\n".join(line_texts.get(region, [])).strip()
        if region in outlines:  # an outline and its bounding box: what reads only boxes reads it too
            return Line(text=text, box=outline_box(outlines[region]), polygon=outlines[region])
        return Line(text=text, box=boxes[region])

    lines = sorted(
        (read_line(region) for region in {**boxes, **outlines}), key=lambda line: (line["box"][1], line["box"][0])
    )
    text = "\n".join(paragraph).strip()
    if not text:
        text = "\n".join(line["text"] for line in lines if line["text"])
    lead_time = annotation.get("lead_time")
    if lead_time is not None and (not isinstance(lead_time, int | float) or isinstance(lead_time, bool)):
        raise MalformedAnnotationError(f"{where}: lead_time must be a number of seconds, not {lead_time!r}")
    updated_at = _timestamp(annotation.get("updated_at"), f"{where}: updated_at")
    created = annotation.get("created_at")
    annotator = _annotator(annotation, where)
    nul += len(UNSTORABLE.findall(annotator))
    return ParsedAnnotation(
        ls_annotation_id=annotation_id,
        ls_task_id=task_id,
        uid=uid,
        annotator=UNSTORABLE.sub("", annotator),
        text=text,
        lines=tuple(lines),
        unreadable=unreadable,
        skipped=bool(annotation.get("was_cancelled", False)),
        lead_time_s=None if lead_time is None else float(lead_time),
        created_at=updated_at if created is None else _timestamp(created, f"{where}: created_at"),
        updated_at=updated_at,
        paragraph="\n".join(paragraph).strip(),
        nul_characters=nul,
    )
