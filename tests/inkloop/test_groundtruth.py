"""PAGE XML and ALTO read and written: both schemas of each, line types, reading order, the real sets' files, and one
clear error naming the file and the element for each way a file can be wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from inkloop.groundtruth import Format, GroundTruthError, parse, to_alto, to_page_xml, write
from tests.support.paths import REAL_HANDWRITING

PAGE_2013 = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2013-07-15"
PAGE_2019 = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"


def page_xml(body: str, *, ns: str = PAGE_2019, size: str = 'imageWidth="1000" imageHeight="800"') -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><PcGts xmlns="{ns}"><Metadata><Creator>t</Creator></Metadata>'
        f'<Page imageFilename="p.jpg" {size}>{body}</Page></PcGts>'
    ).encode()


def alto_xml(lines: str, *, version: int = 4, tags: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><alto xmlns="http://www.loc.gov/standards/alto/ns-v{version}#">'
        "<Description><MeasurementUnit>pixel</MeasurementUnit><sourceImageInformation><fileName>p.jpg</fileName>"
        f'</sourceImageInformation></Description>{tags}<Layout><Page WIDTH="1000" HEIGHT="800" ID="p">'
        f'<PrintSpace><TextBlock ID="b1">{lines}</TextBlock></PrintSpace></Page></Layout></alto>'
    ).encode()


def test_page_xml_lines_in_reading_order_with_types_and_the_chosen_text() -> None:
    body = (
        '<ReadingOrder><OrderedGroup id="ro"><RegionRefIndexed index="0" regionRef="r2"/>'
        '<RegionRefIndexed index="1" regionRef="r1"/></OrderedGroup></ReadingOrder>'
        '<TextRegion id="r1" custom="structure {type:paragraph;}"><Coords points="0,0 10,0 10,10"/>'
        '<TextLine id="b" custom="readingOrder {index:1;}"><Coords points="10,300 900,300 900,360 10,360"/>'
        '<Baseline points="10,350 900,350"/><TextEquiv><Unicode>second  line </Unicode></TextEquiv></TextLine>'
        '<TextLine id="a" custom="readingOrder {index:0;} structure {type:heading;}">'
        '<Coords points="10,200 900,200 900,260 10,260"/><TextEquiv index="1"><Unicode>alt</Unicode></TextEquiv>'
        '<TextEquiv index="0"><Unicode>first line</Unicode></TextEquiv></TextLine></TextRegion>'
        '<TextRegion id="r2"><TextLine id="c"><Coords points="10,10 900,10 900,60"/>'
        "<TextEquiv><Unicode>top</Unicode></TextEquiv></TextLine></TextRegion>"
    )
    page = parse(page_xml(body), file="p.xml")
    assert (page.format, page.schema, page.width, page.height) == (Format.page, "PAGE 2019-07-15", 1000, 800)
    assert [line.text for line in page.lines] == ["top", "first line", "second line"]
    assert [line.line_type for line in page.lines] == [None, "heading", "paragraph"]
    assert page.lines[2].baseline == ((10, 350), (900, 350))
    assert page.lines[1].baseline == ()
    assert parse(page_xml(body, ns=PAGE_2013), file="p.xml").schema == "PAGE 2013-07-15"


def test_alto_v4_and_v2_lines_types_and_text() -> None:
    tags = '<Tags><OtherTag ID="LT1" LABEL="DefaultLine:Handwritten"/></Tags>'
    line = (
        '<TextLine ID="l1" TAGREFS="LT1" BASELINE="10 100 900 110" HPOS="10" VPOS="50" WIDTH="890" HEIGHT="70">'
        '<Shape><Polygon POINTS="10 50 900 50 900 120 10 120"/></Shape><String CONTENT="Dear"/><SP/>'
        '<String CONTENT="Sir,"/><String CONTENT="yours"/><HYP CONTENT="-"/></TextLine>'
    )
    page = parse(alto_xml(line, tags=tags), file="a.xml", format="alto")
    assert page.schema == "ALTO v4" and page.image_name == "p.jpg"
    (only,) = page.lines
    assert only.text == "Dear Sir, yours-"
    assert only.line_type == "DefaultLine:Handwritten"
    assert only.baseline == ((10, 100), (900, 110))
    assert only.polygon == ((10, 50), (900, 50), (900, 120), (10, 120))
    # ALTO v2: no polygon (the box is the outline) and a baseline given as one vertical position.
    old = (
        '<TextLine ID="l1" BASELINE="100" HPOS="10" VPOS="50" WIDTH="890" HEIGHT="70"><String CONTENT="x"/></TextLine>'
    )
    line2 = parse(alto_xml(old, version=2), file="a.xml").lines[0]
    assert line2.polygon == ((10, 50), (900, 50), (900, 120), (10, 120))
    assert line2.baseline == ((10, 100), (900, 100))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"<PcGts><Page", "p.xml: is not well-formed XML (line 1, column"),
        (b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"/>', "p.xml: is neither PAGE XML nor ALTO"),
        (
            page_xml('<TextRegion id="r"><TextLine id="l9"><Coords points="1,1 2,2 3"/></TextLine></TextRegion>'),
            "p.xml: TextLine l9: Coords has an odd count of coordinates (5)",
        ),
        (
            page_xml('<TextRegion id="r"><TextLine id="l9"><Coords points="a,1 2,2 3,3"/></TextLine></TextRegion>'),
            "p.xml: TextLine l9: Coords coordinate 'a' is not a number",
        ),
        (
            page_xml(
                '<TextRegion id="r"><TextLine id="l7"><Coords points="2000,10 2100,10 2100,50"/></TextLine>'
                "</TextRegion>"
            ),
            "p.xml: TextLine l7: the polygon (2000,10)-(2100,50) lies wholly outside the 1000x800 page",
        ),
        (
            page_xml(
                '<TextRegion id="r"><TextLine id="l3"><TextEquiv><Unicode>x</Unicode></TextEquiv></TextLine>'
                "</TextRegion>"
            ),
            "p.xml: TextLine l3: has neither a polygon (3 points or more) nor a baseline",
        ),
        (page_xml("", size='imageWidth="1000"'), "p.xml: Page: has no imageHeight"),
        (page_xml("", size='imageWidth="0" imageHeight="10"'), "p.xml: Page: the page size 0x10 is empty"),
        (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><PcGts xmlns="'
            + PAGE_2019.encode()
            + b'">&a;</PcGts>',
            "p.xml: refused: EntitiesForbidden",
        ),
        (
            b'<alto xmlns="http://www.loc.gov/standards/alto/ns-v4#"><Description><MeasurementUnit>mm10'
            b"</MeasurementUnit></Description></alto>",
            "p.xml: MeasurementUnit: measures in 'mm10'; only pixel coordinates are read",
        ),
    ],
)
def test_each_kind_of_bad_file_is_one_error_naming_the_file_and_element(data: bytes, expected: str) -> None:
    with pytest.raises(GroundTruthError) as caught:
        parse(data, file="p.xml")
    assert str(caught.value).startswith(expected), str(caught.value)


def test_a_format_given_must_match_and_unknown_tag_references_are_errors() -> None:
    with pytest.raises(GroundTruthError, match="was imported as alto but is page"):
        parse(page_xml(""), file="p.xml", format="alto")
    tags = '<Tags><OtherTag ID="LT1" LABEL="DefaultLine"/></Tags>'
    line = '<TextLine ID="l1" TAGREFS="LT9" BASELINE="1 1 9 1"><String CONTENT="x"/></TextLine>'
    with pytest.raises(GroundTruthError, match="a.xml: TextLine l1: TAGREFS 'LT9' names no tag"):
        parse(alto_xml(line, tags=tags), file="a.xml")


def test_skip_bad_lines_keeps_the_good_ones_and_the_errors_and_edges_are_clamped() -> None:
    body = (
        '<TextRegion id="r"><TextLine id="bad"><Coords points="5000,5000 5100,5000 5100,5100"/></TextLine>'
        '<TextLine id="edge"><Coords points="-3,10 1004,10 1004,50 -3,50"/><TextEquiv><Unicode>ok</Unicode>'
        "</TextEquiv></TextLine></TextRegion>"
    )
    with pytest.raises(GroundTruthError, match="TextLine bad"):
        parse(page_xml(body), file="p.xml")
    page = parse(page_xml(body), file="p.xml", skip_bad_lines=True)
    assert [line.line_id for line in page.lines] == ["edge"]
    assert page.lines[0].polygon == ((0, 10), (1000, 10), (1000, 50), (0, 50))
    assert page.clamped == 1 and len(page.skipped) == 1 and "TextLine bad" in page.skipped[0]


def _real_files() -> list[Path]:
    stanford = sorted((REAL_HANDWRITING / "stanford-memorials" / "pages").glob("*.xml"))[:3]
    hooker = sorted((REAL_HANDWRITING / "hooker" / "pages").glob("*.xml"))[:3]
    return stanford + hooker


@pytest.mark.parametrize("path", _real_files(), ids=lambda p: p.name)
def test_the_real_sets_read_and_round_trip_through_both_formats(path: Path) -> None:
    page = parse(path.read_bytes(), file=path.name)
    assert len(page.lines) >= 10
    assert sum(bool(line.text) for line in page.lines) >= 0.9 * len(page.lines)
    assert all(len(line.polygon) >= 3 and len(line.baseline) >= 2 for line in page.lines)
    if page.format is Format.alto:  # Stanford: SegmOnto line types on every line
        assert all(line.line_type and ":" in line.line_type for line in page.lines)
    for writer in (to_page_xml, to_alto):
        again = parse(writer(page), file="again.xml")
        assert again.lines == page.lines
        assert (again.image_name, again.width, again.height) == (page.image_name, page.width, page.height)
    assert parse(write(page, "page"), file="x").format is Format.page
