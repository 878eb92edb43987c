"""Structure-aware chunking: headings stay with their text, tables are cut only between rows."""

from __future__ import annotations

from langchain_text_splitters import RecursiveCharacterTextSplitter

from ingest.structure import chunk_structured, is_heading, is_table_row, sections

PROSE = (
    "The Company's effective tax rate for the quarter was lower than the statutory federal rate "
    "due primarily to a lower effective tax rate on foreign earnings and research credits. "
)
PAGE = "\n".join(
    [
        "Operating Expenses",
        "Operating expenses for the three months ended July 1, 2023 were as follows (dollars in millions):",
        "Three Months Ended",
        "July 1, 2023 June 25, 2022",
        "Research and development $ 7,442 $ 6,797",
        "Selling, general and administrative $ 5,973 $ 6,012",
        "Total operating expenses $ 13,415 $ 12,809",
        "Provision for Income Taxes",
        *[PROSE] * 6,
        "Effective tax rate 12.5 % 15.7 %",
        "Statutory federal income tax rate 21 % 21 %",
    ]
)


def _split(size: int):
    return RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=0).split_text


def test_lines_are_read_as_headings_table_rows_or_prose():
    assert is_heading("Provision for Income Taxes", PROSE)
    assert is_heading("RISK FACTORS", PROSE)
    assert not is_heading("Three Months Ended", "July 1, 2023 June 25, 2022")  # a column header
    assert not is_heading("Total $ 15,460", PROSE)
    assert not is_heading("driven primarily by increases in headcount.", PROSE)
    assert not is_heading("Operating Expenses", None)
    assert is_table_row("Research and development $ 7,442 $ 6,797")
    assert is_table_row("Effective tax rate 12.5 % 15.7 %")
    assert not is_table_row(PROSE)
    assert [s.heading for s in sections(PAGE)] == ["Operating Expenses", "Provision for Income Taxes"]


def test_a_table_keeps_its_caption_header_and_rows_together():
    chunks = chunk_structured(PAGE, 800, 100, _split(800))
    table = [c for c in chunks if "Research and development $ 7,442" in c]
    assert len(table) == 1
    for line in PAGE.split("\n")[:7]:
        assert line in table[0]  # heading, caption, column header and every row


def test_long_sections_repeat_their_heading_and_respect_the_size():
    chunks = chunk_structured(PAGE, 400, 100, _split(400))
    taxes = [c for c in chunks if PROSE.strip()[:40] in c or "Effective tax rate 12.5" in c]
    assert len(taxes) >= 3
    assert all(c.startswith("Provision for Income Taxes\n") for c in taxes)
    assert all(len(c) <= 400 + len("Provision for Income Taxes\n") for c in chunks)
    # Nothing is lost: every line of the page is in some chunk.
    joined = "\n".join(chunks)
    assert all(line.strip() in joined for line in PAGE.split("\n"))


def test_small_sections_share_a_chunk_and_text_without_headings_still_chunks():
    page = "Litigation\n" + PROSE.strip() + "\nLeases\n" + PROSE.strip()
    assert chunk_structured(page, 800, 100, _split(800)) == [page]
    plain = " ".join([PROSE] * 10)
    chunks = chunk_structured(plain, 500, 100, _split(500))
    assert len(chunks) > 1 and all(len(c) <= 500 for c in chunks)
