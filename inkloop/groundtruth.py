"""Line-level ground truth as transcription projects publish it: PAGE XML and ALTO, read and written.

People who already transcribe handwriting keep their truth in one of two formats:

- **PAGE XML** (Transkribus, OCR-D; schemas 2013-07-15 and 2019-07-15, and the other PRImA versions, which share
  these elements): `Page@imageFilename/@imageWidth/@imageHeight`, `TextRegion > TextLine > Coords@points`
  ("x,y x,y ..."), `Baseline@points`, `TextEquiv/Unicode`. A line's type is the `structure {type:...;}` of its
  `@custom` (else its region's); the reading order is `ReadingOrder`'s indexed region references, then each
  region's lines by their `readingOrder {index:...;}` (else document order).
- **ALTO** v2-v4 (eScriptorium, kraken): `Page@WIDTH/@HEIGHT`, `TextLine@BASELINE` ("x y x y ..." in v4, sometimes
  "x,y x,y"; one number in v2-v3: a horizontal baseline), `Shape/Polygon@POINTS` (else the line's box),
  `String@CONTENT` (joined with spaces; `SP` is a space, `HYP` its hyphen), line types as `Tags/OtherTag@LABEL`
  referred to by `TextLine@TAGREFS` (SegmOnto labels such as `DefaultLine:Handwritten`). Only pixel coordinates.

`parse` reads either into a `GtPage` and is strict: a malformed document, an unknown schema, a line whose polygon
leaves the page or whose points are not numbers is a `GroundTruthError` naming the file and the element. The XML
is parsed with defusedxml (an imported file is untrusted: no entity expansion, no external entities).
`to_page_xml` and `to_alto` write a page back in a form eScriptorium and Transkribus read; `parse` of what they
write gives the same lines (tests/inkloop/test_groundtruth.py).
"""

from __future__ import annotations

import contextlib
import enum
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from xml.etree.ElementTree import Element, SubElement, tostring

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from inkloop.errors import InkloopError

Point = tuple[int, int]

PAGE_NAMESPACE = re.compile(r"^http://schema\.primaresearch\.org/PAGE/gts/pagecontent/(\d{4}-\d{2}-\d{2})$")
PAGE_2019 = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"
ALTO_NAMESPACE = re.compile(r"^http://www\.loc\.gov/standards/alto/ns-v(\d)#$")
ALTO_V4 = "http://www.loc.gov/standards/alto/ns-v4#"
ALTO_V4_SCHEMA = "http://www.loc.gov/standards/alto/v4/alto-4-2.xsd"


class Format(enum.StrEnum):
    page = "page"
    alto = "alto"


class GroundTruthError(InkloopError):
    """An imported ground-truth file is not what it claims: the file, the element and what is wrong."""

    def __init__(self, file: str, message: str, element: str | None = None) -> None:
        self.file, self.element, self.problem = file, element, message
        super().__init__(f"{file}: {element}: {message}" if element else f"{file}: {message}")


@dataclass(frozen=True)
class GtLine:
    """One transcribed line: its outline on the page, its baseline (empty when the file has none) and its text."""

    text: str
    polygon: tuple[Point, ...]
    baseline: tuple[Point, ...] = ()
    line_type: str | None = None  # SegmOnto or PAGE structure type, e.g. "DefaultLine:Handwritten"
    line_id: str | None = None  # the id in the source file
    region_id: str | None = None

    def box(self) -> tuple[int, int, int, int]:
        """left, top, right, bottom of the polygon (of the baseline when a file gave no polygon)."""
        return bounding_box(self.polygon or self.baseline)


@dataclass(frozen=True)
class GtPage:
    image_name: str  # as the file names it; the image is looked for beside the file (see cli/flows)
    width: int
    height: int
    lines: tuple[GtLine, ...]
    format: Format
    schema: str  # "PAGE 2013-07-15", "ALTO v4", ...
    extra: dict[str, str] = field(default_factory=dict, compare=False)  # e.g. Transkribus' creator
    clamped: int = field(default=0, compare=False)  # lines with points past the page's edge, moved onto it
    skipped: tuple[str, ...] = field(default=(), compare=False)  # the errors of lines left out (skip_bad_lines)

    def line_types(self) -> list[str]:
        return sorted({line.line_type for line in self.lines if line.line_type})

    def with_lines(self, lines: Iterable[GtLine]) -> GtPage:
        return GtPage(
            self.image_name,
            self.width,
            self.height,
            tuple(lines),
            self.format,
            self.schema,
            self.extra,
            self.clamped,
            self.skipped,
        )


def bounding_box(points: Sequence[Point]) -> tuple[int, int, int, int]:
    if not points:
        raise ValueError("no points")
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    return min(xs), min(ys), max(xs), max(ys)


def normalize_space(text: str) -> str:
    """A line's text with its runs of whitespace as single spaces and none at either end (both formats agree)."""
    return " ".join(text.split())


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _namespace(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def _children(node: Element, name: str) -> list[Element]:
    return [child for child in node if _local(child.tag) == name]


def _child(node: Element, name: str) -> Element | None:
    found = _children(node, name)
    return found[0] if found else None


def _describe(node: Element) -> str:
    ident = node.get("id") or node.get("ID")
    return f"{_local(node.tag)} {ident}" if ident else _local(node.tag)


def _int(value: str | None, file: str, element: str, what: str) -> int:
    if value is None or not value.strip():
        raise GroundTruthError(file, f"has no {what}", element)
    try:
        number = float(value)
    except ValueError:
        raise GroundTruthError(file, f"{what} {value!r} is not a number", element) from None
    if number != number or number in (float("inf"), float("-inf")):
        raise GroundTruthError(file, f"{what} {value!r} is not a number", element)
    return round(number)


def parse_points(text: str | None, *, file: str, element: str, what: str) -> tuple[Point, ...]:
    """'x,y x,y ...' (PAGE) or 'x y x y ...' (ALTO v4; either is accepted for either format)."""
    if text is None or not text.strip():
        return ()
    numbers = text.replace(",", " ").split()
    if len(numbers) % 2:
        raise GroundTruthError(file, f"{what} has an odd count of coordinates ({len(numbers)})", element)
    values = [_int(n, file, element, f"{what} coordinate") for n in numbers]
    return tuple(zip(values[0::2], values[1::2], strict=True))


def _check_on_page(points: Sequence[Point], width: int, height: int, file: str, element: str, what: str) -> bool:
    """Whether any point lies outside the page (those are clamped to its edge: transcription tools write outlines a
    few pixels past an edge, and now and then a stray vertex). An outline wholly off the page does not describe this
    image: that is an error."""
    if not points:
        return False
    left, top, right, bottom = bounding_box(points)
    if right < 0 or bottom < 0 or left > width or top > height:
        raise GroundTruthError(
            file, f"{what} ({left},{top})-({right},{bottom}) lies wholly outside the {width}x{height} page", element
        )
    return any(not (0 <= x <= width and 0 <= y <= height) for x, y in points)


def _clamp(points: Sequence[Point], width: int, height: int) -> tuple[Point, ...]:
    return tuple((min(max(x, 0), width), min(max(y, 0), height)) for x, y in points)


def detect(root: Element) -> Format:
    ns = _namespace(root.tag)
    if _local(root.tag) == "PcGts" and PAGE_NAMESPACE.match(ns):
        return Format.page
    if _local(root.tag) == "alto" and (ALTO_NAMESPACE.match(ns) or ns == ""):
        return Format.alto
    shown = f"<{_local(root.tag)}>" + (f" in namespace {ns}" if ns else " without a namespace")
    raise GroundTruthError("", f"is neither PAGE XML nor ALTO: its root is {shown}")


def parse(data: bytes, *, file: str, format: Format | str | None = None, skip_bad_lines: bool = False) -> GtPage:
    """The page a PAGE XML or ALTO document describes. `format` None detects it; given, it must match.

    A line that cannot be read (no outline, an outline wholly off the page, coordinates that are not numbers) is an
    error for the whole file, unless `skip_bad_lines`: then it is left out and its error kept in `page.skipped`."""
    try:
        root = SafeET.fromstring(data)
    except DefusedXmlException as exc:
        raise GroundTruthError(
            file, f"refused: {type(exc).__name__} (entities are not allowed in imported XML)"
        ) from None
    except SafeET.ParseError as exc:
        line, column = getattr(exc, "position", (0, 0))
        raise GroundTruthError(file, f"is not well-formed XML (line {line}, column {column + 1})") from None
    try:
        found = detect(root)
    except GroundTruthError as exc:
        raise GroundTruthError(file, exc.problem) from None
    if format is not None and Format(format) is not found:
        raise GroundTruthError(file, f"was imported as {Format(format).value} but is {found.value}")
    read = _parse_page if found is Format.page else _parse_alto
    return read(root, file, skip_bad_lines)


class _Lines:
    """The lines of one page as they are read: checked, clamped onto the page, or skipped with their error."""

    def __init__(self, file: str, width: int, height: int, skip_bad_lines: bool) -> None:
        self.file, self.width, self.height, self.skip_bad_lines = file, width, height, skip_bad_lines
        self.lines: list[GtLine] = []
        self.clamped = 0
        self.skipped: list[str] = []

    @contextlib.contextmanager
    def reading(self, where: str) -> Iterator[None]:
        try:
            yield
        except GroundTruthError as exc:
            if not self.skip_bad_lines:
                raise
            self.skipped.append(str(exc))

    def add(
        self,
        where: str,
        *,
        text: str,
        polygon: tuple[Point, ...],
        baseline: tuple[Point, ...],
        line_type: str | None,
        line_id: str | None,
        region_id: str | None,
    ) -> None:
        if len(polygon) < 3 and len(baseline) < 2:
            raise GroundTruthError(self.file, "has neither a polygon (3 points or more) nor a baseline", where)
        off_page = _check_on_page(polygon, self.width, self.height, self.file, where, "the polygon")
        off_page = _check_on_page(baseline, self.width, self.height, self.file, where, "the baseline") or off_page
        self.clamped += off_page
        self.lines.append(
            GtLine(
                text=text,
                polygon=_clamp(polygon, self.width, self.height) if len(polygon) >= 3 else (),
                baseline=_clamp(baseline, self.width, self.height),
                line_type=line_type,
                line_id=line_id,
                region_id=region_id,
            )
        )

    def page(self, name: str, format: Format, schema: str, extra: dict[str, str]) -> GtPage:
        return GtPage(
            name, self.width, self.height, tuple(self.lines), format, schema, extra, self.clamped, tuple(self.skipped)
        )


# --- PAGE XML -----------------------------------------------------------------------------------------------------

_CUSTOM = re.compile(r"(\w+)\s*\{([^}]*)\}")


def _custom(node: Element) -> dict[str, dict[str, str]]:
    """PAGE's @custom: 'readingOrder {index:0;} structure {type:heading;}' -> {'readingOrder': {'index': '0'}, ...}."""
    result: dict[str, dict[str, str]] = {}
    for name, body in _CUSTOM.findall(node.get("custom") or ""):
        fields = {}
        for part in body.split(";"):
            key, sep, value = part.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        result[name] = fields
    return result


def _structure_type(node: Element) -> str | None:
    return _custom(node).get("structure", {}).get("type") or None


def _reading_index(node: Element, fallback: int) -> tuple[int, int]:
    index = _custom(node).get("readingOrder", {}).get("index")
    try:
        return (int(index), fallback) if index is not None else (fallback, fallback)
    except ValueError:
        return (fallback, fallback)


def _page_points(node: Element | None, file: str, element: str, what: str) -> tuple[Point, ...]:
    if node is None:
        return ()
    if node.get("points") is not None:
        return parse_points(node.get("points"), file=file, element=element, what=what)
    # PAGE 2010 and earlier: <Point x= y=/> children.
    return tuple(
        (_int(p.get("x"), file, element, f"{what} x"), _int(p.get("y"), file, element, f"{what} y"))
        for p in _children(node, "Point")
    )


def _page_text(line: Element) -> str:
    equivs = _children(line, "TextEquiv")
    if not equivs:
        return ""
    chosen = next((e for e in equivs if e.get("index") == "0"), equivs[-1])
    unicode = _child(chosen, "Unicode")
    return normalize_space(unicode.text or "") if unicode is not None else ""


def _regions_in_order(page: Element) -> list[Element]:
    regions = [node for node in page.iter() if _local(node.tag) == "TextRegion"]
    order: dict[str, int] = {}
    reading = _child(page, "ReadingOrder")
    if reading is not None:
        for ref in reading.iter():
            if _local(ref.tag) in ("RegionRefIndexed", "RegionRef") and ref.get("regionRef"):
                order.setdefault(ref.get("regionRef", ""), len(order) if ref.get("index") is None else 0)
                if ref.get("index") is not None:
                    with contextlib.suppress(ValueError):
                        order[ref.get("regionRef", "")] = int(ref.get("index", "0"))
    positions = {id(region): n for n, region in enumerate(regions)}
    return sorted(regions, key=lambda r: (order.get(r.get("id", ""), len(order) + positions[id(r)]), positions[id(r)]))


def _parse_page(root: Element, file: str, skip_bad_lines: bool) -> GtPage:
    schema = "PAGE " + PAGE_NAMESPACE.match(_namespace(root.tag)).group(1)  # type: ignore[union-attr]
    page = _child(root, "Page")
    if page is None:
        raise GroundTruthError(file, "has no <Page> element", "PcGts")
    name = (page.get("imageFilename") or "").strip()
    if not name:
        raise GroundTruthError(file, "has no imageFilename", "Page")
    width = _int(page.get("imageWidth"), file, "Page", "imageWidth")
    height = _int(page.get("imageHeight"), file, "Page", "imageHeight")
    if width <= 0 or height <= 0:
        raise GroundTruthError(file, f"the page size {width}x{height} is empty", "Page")
    lines = _Lines(file, width, height, skip_bad_lines)
    for region in _regions_in_order(page):
        region_type = _structure_type(region)
        own = [node for node in region if _local(node.tag) == "TextLine"]
        ordered = sorted(enumerate(own), key=lambda pair: _reading_index(pair[1], pair[0]))
        for _, node in ordered:
            where = _describe(node)
            with lines.reading(where):
                lines.add(
                    where,
                    text=_page_text(node),
                    polygon=_page_points(_child(node, "Coords"), file, where, "Coords"),
                    baseline=_page_points(_child(node, "Baseline"), file, where, "Baseline"),
                    line_type=_structure_type(node) or region_type,
                    line_id=node.get("id"),
                    region_id=region.get("id"),
                )
    extra = {}
    creator = _child(_child(root, "Metadata") or Element("x"), "Creator")
    if creator is not None and creator.text:
        extra["creator"] = creator.text.strip().splitlines()[-1][:200]
    return lines.page(name, Format.page, schema, extra)


# --- ALTO ---------------------------------------------------------------------------------------------------------


def _alto_baseline(value: str | None, node: Element, file: str, where: str) -> tuple[Point, ...]:
    if value is None or not value.strip():
        return ()
    parts = value.replace(",", " ").split()
    if len(parts) == 1:  # ALTO v2-v3: the baseline's vertical position, across the line's box
        y = _int(parts[0], file, where, "BASELINE")
        left = _int(node.get("HPOS"), file, where, "HPOS")
        right = left + _int(node.get("WIDTH"), file, where, "WIDTH")
        return ((left, y), (right, y))
    return parse_points(value, file=file, element=where, what="BASELINE")


def _alto_text(line: Element) -> str:
    parts: list[str] = []
    for child in line:
        kind = _local(child.tag)
        if kind == "String":
            if parts and parts[-1] != " ":
                parts.append(" ")
            parts.append(child.get("CONTENT") or "")
        elif kind == "SP" and parts and parts[-1] != " ":
            parts.append(" ")
        elif kind == "HYP":
            parts.append(child.get("CONTENT") or "-")
    return normalize_space("".join(parts))


def _parse_alto(root: Element, file: str, skip_bad_lines: bool) -> GtPage:
    ns = _namespace(root.tag)
    version = ALTO_NAMESPACE.match(ns)
    schema = f"ALTO v{version.group(1)}" if version else "ALTO (no namespace)"
    description = _child(root, "Description")
    unit = _child(description, "MeasurementUnit") if description is not None else None
    measure = (unit.text or "").strip() if unit is not None else ""
    if measure not in ("pixel", ""):
        raise GroundTruthError(file, f"measures in {measure!r}; only pixel coordinates are read", "MeasurementUnit")
    name = ""
    if description is not None:
        source = _child(description, "sourceImageInformation")
        file_name = _child(source, "fileName") if source is not None else None
        name = (file_name.text or "").strip() if file_name is not None else ""
    tags = {}
    tags_node = _child(root, "Tags")
    if tags_node is not None:
        for tag in tags_node:
            if tag.get("ID") and tag.get("LABEL"):
                tags[tag.get("ID", "")] = tag.get("LABEL", "")
    layout = _child(root, "Layout")
    pages = _children(layout, "Page") if layout is not None else []
    if len(pages) != 1:
        raise GroundTruthError(file, f"holds {len(pages)} <Page> elements; inkloop imports one page per file", "Layout")
    page = pages[0]
    width = _int(page.get("WIDTH"), file, "Page", "WIDTH")
    height = _int(page.get("HEIGHT"), file, "Page", "HEIGHT")
    if width <= 0 or height <= 0:
        raise GroundTruthError(file, f"the page size {width}x{height} is empty", "Page")
    lines = _Lines(file, width, height, skip_bad_lines)
    for block in (node for node in page.iter() if _local(node.tag) == "TextBlock"):
        for node in _children(block, "TextLine"):
            where = _describe(node)
            with lines.reading(where):
                shape = _child(node, "Shape")
                polygon_node = _child(shape, "Polygon") if shape is not None else None
                polygon = (
                    parse_points(polygon_node.get("POINTS"), file=file, element=where, what="Polygon")
                    if polygon_node is not None
                    else ()
                )
                if len(polygon) < 3 and node.get("HPOS") is not None:
                    x, y = _int(node.get("HPOS"), file, where, "HPOS"), _int(node.get("VPOS"), file, where, "VPOS")
                    w = _int(node.get("WIDTH"), file, where, "WIDTH")
                    h = _int(node.get("HEIGHT"), file, where, "HEIGHT")
                    polygon = ((x, y), (x + w, y), (x + w, y + h), (x, y + h))
                refs = (node.get("TAGREFS") or "").split()
                if refs and tags_node is not None and not any(ref in tags for ref in refs):
                    raise GroundTruthError(file, f"TAGREFS {refs[0]!r} names no tag in <Tags>", where)
                lines.add(
                    where,
                    text=_alto_text(node),
                    polygon=polygon,
                    baseline=_alto_baseline(node.get("BASELINE"), node, file, where),
                    line_type=next((tags[ref] for ref in refs if ref in tags), None),
                    line_id=node.get("ID"),
                    region_id=block.get("ID"),
                )
    return lines.page(name, Format.alto, schema, {})


# --- writing ------------------------------------------------------------------------------------------------------

_NCNAME = re.compile(r"^[A-Za-z_][\w.-]*$")


def _ids(page: GtPage) -> list[str]:
    """The lines' ids as written: the source's where they are valid XML ids and unique, else l1, l2, ..."""
    seen: set[str] = set()
    ids = []
    for n, line in enumerate(page.lines, start=1):
        ident = line.line_id if line.line_id and _NCNAME.match(line.line_id) and line.line_id not in seen else None
        ident = ident or f"l{n}"
        while ident in seen:
            ident = f"{ident}_{n}"
        seen.add(ident)
        ids.append(ident)
    return ids


def _regions(page: GtPage) -> list[tuple[str, list[int]]]:
    """Consecutive lines of one region stay together, in reading order."""
    groups: list[tuple[str, list[int]]] = []
    for n, line in enumerate(page.lines):
        region = line.region_id if line.region_id and _NCNAME.match(line.region_id) else "r1"
        if groups and groups[-1][0] == region:
            groups[-1][1].append(n)
        else:
            groups.append((region, [n]))
    used: dict[str, int] = {}
    unique = []
    for region, members in groups:
        used[region] = used.get(region, 0) + 1
        unique.append((region if used[region] == 1 else f"{region}_{used[region]}", members))
    return unique


def _points(points: Sequence[Point], sep: str) -> str:
    return " ".join(f"{x}{sep}{y}" for x, y in points)


def _box_polygon(box: tuple[int, int, int, int]) -> tuple[Point, ...]:
    left, top, right, bottom = box
    return ((left, top), (right, top), (right, bottom), (left, bottom))


def _xml(root: Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + tostring(root, encoding="unicode").encode("utf-8") + b"\n"


def to_page_xml(page: GtPage, *, creator: str = "inkloop") -> bytes:
    """PAGE XML 2019-07-15, which Transkribus and eScriptorium import."""
    root = Element("PcGts", {"xmlns": PAGE_2019})
    metadata = SubElement(root, "Metadata")
    SubElement(metadata, "Creator").text = creator
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    SubElement(metadata, "Created").text = now
    SubElement(metadata, "LastChange").text = now
    node = SubElement(
        root, "Page", {"imageFilename": page.image_name, "imageWidth": str(page.width), "imageHeight": str(page.height)}
    )
    regions = _regions(page)
    ids = _ids(page)
    if regions:
        group = SubElement(SubElement(node, "ReadingOrder"), "OrderedGroup", {"id": "ro_1", "caption": "Regions"})
        for index, (region, _) in enumerate(regions):
            SubElement(group, "RegionRefIndexed", {"index": str(index), "regionRef": region})
    for index, (region, members) in enumerate(regions):
        region_node = SubElement(node, "TextRegion", {"id": region, "custom": f"readingOrder {{index:{index};}}"})
        boxes = [page.lines[n].box() for n in members]
        outer = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
        SubElement(region_node, "Coords", {"points": _points(_box_polygon(outer), ",")})
        for order, n in enumerate(members):
            line = page.lines[n]
            custom = f"readingOrder {{index:{order};}}"
            if line.line_type:
                custom += f" structure {{type:{line.line_type};}}"
            line_node = SubElement(region_node, "TextLine", {"id": ids[n], "custom": custom})
            SubElement(line_node, "Coords", {"points": _points(line.polygon or _box_polygon(line.box()), ",")})
            if line.baseline:
                SubElement(line_node, "Baseline", {"points": _points(line.baseline, ",")})
            SubElement(SubElement(line_node, "TextEquiv"), "Unicode").text = line.text
    return _xml(root)


def to_alto(page: GtPage) -> bytes:
    """ALTO v4 with SegmOnto-style line type tags, as eScriptorium writes and reads it."""
    root = Element(
        "alto",
        {
            "xmlns": ALTO_V4,
            "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
            "xsi:schemaLocation": f"{ALTO_V4} {ALTO_V4_SCHEMA}",
        },
    )
    description = SubElement(root, "Description")
    SubElement(description, "MeasurementUnit").text = "pixel"
    SubElement(SubElement(description, "sourceImageInformation"), "fileName").text = page.image_name
    types = page.line_types()
    tag_ids = {label: f"LT{n}" for n, label in enumerate(types, start=1)}
    if types:
        tags = SubElement(root, "Tags")
        for label, ident in tag_ids.items():
            SubElement(tags, "OtherTag", {"ID": ident, "LABEL": label, "DESCRIPTION": f"line type {label}"})
    layout = SubElement(root, "Layout")
    node = SubElement(
        layout, "Page", {"WIDTH": str(page.width), "HEIGHT": str(page.height), "PHYSICAL_IMG_NR": "1", "ID": "page1"}
    )
    space = SubElement(
        node, "PrintSpace", {"HPOS": "0", "VPOS": "0", "WIDTH": str(page.width), "HEIGHT": str(page.height)}
    )
    ids = _ids(page)
    for region, members in _regions(page):
        block = SubElement(space, "TextBlock", {"ID": region})
        for n in members:
            line = page.lines[n]
            left, top, right, bottom = line.box()
            attrs = {"ID": ids[n]}
            if line.line_type:
                attrs["TAGREFS"] = tag_ids[line.line_type]
            if line.baseline:
                attrs["BASELINE"] = _points(line.baseline, " ")
            attrs.update(HPOS=str(left), VPOS=str(top), WIDTH=str(right - left), HEIGHT=str(bottom - top))
            line_node = SubElement(block, "TextLine", attrs)
            SubElement(
                SubElement(line_node, "Shape"),
                "Polygon",
                {"POINTS": _points(line.polygon or _box_polygon(line.box()), " ")},
            )
            SubElement(
                line_node,
                "String",
                {
                    "CONTENT": line.text,
                    "HPOS": str(left),
                    "VPOS": str(top),
                    "WIDTH": str(right - left),
                    "HEIGHT": str(bottom - top),
                },
            )
    return _xml(root)


def write(page: GtPage, format: Format | str) -> bytes:
    return to_page_xml(page) if Format(format) is Format.page else to_alto(page)
