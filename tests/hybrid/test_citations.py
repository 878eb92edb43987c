"""Citation resolution: markers kept, repaired, attached and renumbered; never invented."""

from __future__ import annotations

import pytest

from ingest import Hit

from hybrid.citations import cite

HITS = [
    Hit("/docs/engine.pdf", 3, "e:p3:c0", 0.8, "The pilot reported an engine failure at 3,000 feet. The aircraft landed in a field."),
    Hit("/docs/annual.pdf", 7, "a:p7:c0", 0.6, "Revenue grew 12 percent in 2022, driven by services. Costs were flat."),
]


def test_valid_marker_is_kept_and_renumbered_in_order_of_use() -> None:
    out = cite("Revenue grew 12 percent in 2022 [2]. The pilot reported an engine failure [1].", HITS)
    assert out.text == "Revenue grew 12 percent in 2022 [1]. The pilot reported an engine failure [2]."
    assert [(c.n, c.source, c.page) for c in out.citations] == [(1, "/docs/annual.pdf", 7), (2, "/docs/engine.pdf", 3)]
    assert out.grounded


def test_marker_out_of_range_is_never_cited_but_support_is_attached() -> None:
    out = cite("The pilot reported an engine failure [9].", HITS)
    assert [c.chunk_id for c in out.citations] == ["e:p3:c0"]
    assert out.text.endswith("[1].")


def test_missing_markers_are_attached_from_supporting_passage() -> None:
    out = cite("Revenue grew 12 percent in 2022 thanks to services.", HITS)
    assert out.citations[0].chunk_id == "a:p7:c0"
    assert "[1]" in out.text


def test_unsupported_sentence_is_dropped_by_default() -> None:
    out = cite("The pilot reported an engine failure [1]. Unicorns dance over purple rainbows nightly.", HITS)
    assert out.text == "The pilot reported an engine failure [1]."
    assert out.grounded and len(out.citations) == 1
    dropped = out.sentences[1]
    assert dropped.text == "Unicorns dance over purple rainbows nightly." and not dropped.kept and not dropped.supported


def test_unsupported_sentence_kept_when_flagging_makes_answer_ungrounded() -> None:
    out = cite("The pilot reported an engine failure [1]. Unicorns dance over purple rainbows nightly.", HITS, drop_unsupported=False)
    assert not out.grounded
    assert out.text.endswith("Unicorns dance over purple rainbows nightly.")
    assert [(s.supported, s.kept, s.cited) for s in out.sentences] == [(True, True, (1,)), (False, True, ())]


def test_a_number_absent_from_the_cited_passage_makes_a_sentence_unsupported() -> None:
    out = cite("Revenue grew 15 percent in 2022 [2]. The aircraft landed in a field [1].", HITS)
    assert out.text == "The aircraft landed in a field [1]."
    assert out.sentences[0].support == 0.0 and not out.sentences[0].supported
    assert [c.chunk_id for c in out.citations] == ["e:p3:c0"]


def test_numbers_match_across_thousands_separators_and_list_enumerators() -> None:
    out = cite("1. The pilot reported an engine failure at 3000 feet [1].", HITS)
    assert out.grounded and out.sentences[0].supported


@pytest.mark.parametrize(
    "answer",
    [
        "Revenue grew 12 percent in 2022, cited at [2].",
        "Revenue grew 12 percent in 2022 (see [2]).",
        "Revenue grew 12 percent in 2022, according to [2].",
        "Revenue grew 12 percent in 2022 as stated in [source].",
    ],
)
def test_removing_or_moving_a_marker_leaves_no_dangling_words(answer) -> None:
    assert cite(answer, HITS).text == "Revenue grew 12 percent in 2022 [1]."


def test_a_sentence_that_only_pointed_at_a_marker_reads_whole() -> None:
    # The demo once printed "Details: this is a summary cited at." (README, before the fix).
    out = cite("Revenue grew 12 percent in 2022 [2].\n\nDetails: this is a summary cited at [9].", HITS)
    assert out.text.splitlines()[-1] == "Details: this is a summary."


def test_quote_is_verbatim_text_of_the_cited_chunk() -> None:
    out = cite("The aircraft landed in a field [1].", HITS)
    assert out.citations[0].quote == "The aircraft landed in a field."
    assert out.citations[0].quote in HITS[0].text


def test_line_breaks_of_a_house_style_list_survive() -> None:
    out = cite("Summary:\n1. Revenue grew 12 percent in 2022 [2].\n2. Costs were flat [2].", HITS)
    assert out.text.splitlines()[1].startswith("1. Revenue")
    assert out.text.splitlines()[2].startswith("2. Costs")


def test_answer_without_any_support_cites_nothing() -> None:
    out = cite("I do not know anything about bananas in Peru.", HITS)
    assert out.citations == [] and not out.grounded


def test_empty_markers_are_removed() -> None:
    out = cite("Revenue grew 12 percent in 2022 [].", HITS)
    assert out.text == "Revenue grew 12 percent in 2022 [1]."


def test_a_quote_prefers_a_full_sentence_to_a_heading_with_the_same_words() -> None:
    text = (
        "What happens to a PDF that cannot be read during ingest\n"
        "It is skipped. A PDF that cannot be read during ingest is reported with the reason."
    )
    hit = Hit("/d/ingest.pdf", 3, "x:p3:c0", 0.7, text)
    cited = cite("A PDF that cannot be read during ingest is skipped [1].", [hit])
    assert cited.citations[0].quote == "A PDF that cannot be read during ingest is reported with the reason."


def test_talk_about_the_sources_is_not_a_supported_claim() -> None:
    # SmolLM2-135M's usual non-answer: it shares a title's words with the passage, and says nothing.
    out = cite('The sources I provided earlier were for a document titled "Engine failure" [1].', HITS)
    assert out.text == "" and out.supported_sentences == 0
    assert out.sentences[0].claim and not out.sentences[0].supported


def test_a_dropped_list_item_takes_its_number_with_it() -> None:
    out = cite("Summary:\n1. Revenue grew 12 percent in 2022 [2].\n2. Unicorns fly purple kites daily.\n3. Costs were flat [2].", HITS)
    assert out.text == "Summary:\n1. Revenue grew 12 percent in 2022 [1].\n3. Costs were flat [1]."


def test_a_fragment_cut_by_the_token_limit_is_left_out() -> None:
    out = cite("The pilot reported an engine failure [1]. In this case, I used the", HITS)
    assert out.text == "The pilot reported an engine failure [1]."
    assert not out.sentences[-1].kept
    out = cite("The pilot reported an engine failure [1].\n2. **Engine", HITS)
    assert out.text == "The pilot reported an engine failure [1]."


def test_a_short_sentence_with_a_number_is_a_claim() -> None:
    out = cite("The answer is: 45,384 [1].", HITS)
    assert out.text == "" and out.sentences[0].claim and not out.sentences[0].supported


def test_a_repeated_line_is_kept_once_and_source_headers_are_not_facts() -> None:
    out = cite("The pilot reported an engine failure [1]. The pilot reported an engine failure [1].\nengine.pdf, page 3 [1].", HITS)
    assert out.text == "The pilot reported an engine failure [1]."
    assert [s.kept for s in out.sentences] == [True, False, False]


@pytest.mark.parametrize(
    "meta",
    [
        "The sources cited above provide detailed information about the engine failure.",
        "The sources mentioned earlier provide evidence of an engine failure at the airport.",
        "Based on the sources provided, the pilot reported an engine failure.",
    ],
)
def test_more_talk_about_the_sources(meta) -> None:
    assert not cite(meta, HITS).sentences[0].supported


def test_house_boilerplate_is_kept_without_a_citation_and_is_no_claim() -> None:
    from hybrid.grounding import house_key, house_sentences

    replies = [f"Answer {i}: the pump note is filed. This draft is for internal medical review and does not replace the approved product information." for i in range(5)]
    replies.append("Our line is open 24/7. This draft is for internal medical review and does not replace the approved product information.")
    replies += ["Our line is open 24/7."] * 3  # repeated, but a number: a fact, not house style
    house = house_sentences(replies)
    assert house == {house_key("This draft is for internal medical review and does not replace the approved product information.")}
    hits = [Hit("/d/pump.pdf", 2, "p:p2:c0", 0.7, "The pump maintenance note was filed in March by the plant engineer.")]
    answer = "The pump maintenance note was filed in March [1]. This draft is for internal medical review and does not replace the approved product information."
    plain = cite(answer, hits)
    assert "internal medical review" not in plain.text  # no passage supports it: dropped
    kept = cite(answer, hits, house=house)
    assert kept.text.endswith("This draft is for internal medical review and does not replace the approved product information.") and kept.grounded
    boiler = kept.sentences[-1]
    assert not boiler.claim and boiler.supported and boiler.cited == ()
