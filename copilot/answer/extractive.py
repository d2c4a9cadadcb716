"""Extractive answers: the retrieved sentences (or table rows) that best answer the question,
cited.

No instruction-following chat model can run on the machines this copilot targets, so the
default answerer does not write: it picks, from the retrieved chunks, the few sentences or
table rows that answer the question and cites the source each came from as ``[n]``. Every
word of the answer is therefore a quotation the user can check against its source.

Candidates are scored by the embedding model the index already uses (cosine to the question,
and to the chunk the sentence sits in) plus the share of the question's rare-term weight they
hold, which catches names, numbers and jargon that a small embedding model blurs. Whether to
answer at all is decided on both kinds of evidence (see `EvidenceGate`): weak evidence gets
the passages with a plain "none states it directly", none at all gets "not found".
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import math
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import blingfire
import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from copilot.answer.terms import content_terms, language_of
from copilot.knowledge.embeddings import VectorCache
from copilot.knowledge.tables import TableRow, csv_row, pipe_table_rows, render

NOT_FOUND_TEXT = "I couldn't find this in the knowledge available to you."
# Said before the passages quoted when none of them answers well enough; not an answer.
WEAK_EVIDENCE_TEXT = "I found these passages but none states it directly:"

# --- Sentence splitting --------------------------------------------------------------------

# A footnote number right after a sentence's period ("in the end.5 Each ..."), or glued to
# the next sentence ("... bacteria. 3The ideal ...").
_FOOTNOTE_AFTER_PERIOD = re.compile(r"(?<=[a-z)])\.\d{1,2}(?=\s+[\"'“‘(\[]?[A-Z])")
_FOOTNOTE_BEFORE_SENTENCE = re.compile(r"(?<=[.!?])(\s+)\d{1,2}(?=[A-Z][a-z])")
# A section heading glued after a sentence by a PDF line join: "... online. 4.1 Data".
_SECTION_AFTER_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=\d{1,2}(?:\.\d{1,2})*\.?\s+[A-Z])")
_BULLET = re.compile(r"^\s*(?:[-*•▪●◦‣–—]|\(?\d{1,2}[.)]|\(?[a-z][)])\s+")
_MARKDOWN_HEADING = re.compile(r"^\s*#{1,6}\s")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?\s*$")
_SECTION_NUMBER = re.compile(r"^(?:\d{1,2}(?:\.\d{1,2})*\.?|[A-Z]\.|[IVX]{1,4}\.)\s+[A-Z]")
_WORD = re.compile(r"[^\W\d_]+")
_TITLE_CASE_SMALL_WORDS = frozenset(
    ["a", "an", "and", "as", "at", "by", "for", "in", "of", "on", "or", "the", "to", "vs", "with"]
)
_HYPHENATED_BREAK = re.compile(r"([A-Za-z]+)-[ \t]*\n[ \t]*(([A-Za-z]+)\S*)")
# Numeric reference markers of the source text ("[7]", "[8, 9]", "[3-5]") would read as our
# own citations, so they go.
_REFERENCE_MARKER = re.compile(r"\s*\[\d{1,3}(?:\s*[,–-]\s*\d{1,3})*\]")
# "Abstract: ", "METHODS AND FINDINGS: ", "IMPORTANCE " label a section; they are no part
# of the sentence the user should read.
_LEADING_LABEL = re.compile(
    r"^(?:(?:[A-Z][A-Za-z]*[ ]?){1,3}:\s+|[A-Z]{6,}(?: [A-Z]{2,})*\s+)(?=[A-Z0-9\"'(])"
)
_DROP_CAPITAL = re.compile(r"^([B-HJ-Z]) [a-z]{2,}")
# Openers that lean on the sentence before ("This suggests ...", "They ..."); "This paper"
# and the like point at the document instead, which needs no context.
_REFERRING_OPENER = re.compile(
    r"^(?:(?:This|These|That|Those|Such|Both)\b(?! (?:paper|study|work|article|review|report|"
    r"document|section|chapter|policy|handbook|guide|manual|book|page)\b)"
    r"|(?:It|Its|They|Their|He|She|His|Her)\b)"
)
# A footnote number glued to the start of the next sentence: "3The ideal size ...".
_LEADING_FOOTNOTE = re.compile(r"^\d{1,2}(?=[A-Z][a-z])")
_SENTENCE_CLOSERS = ".!?\"'”’)"
_SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+([.,;:!?])(?=\s|$)")
_WHITESPACE = re.compile(r"\s+")
_TERMINAL_PUNCTUATION = ".!?:;,-–—"
# A PDF line longer than this is a paragraph of its own, not a wrapped line.
_LONGEST_WRAPPED_LINE = 150

MIN_SENTENCE_WORDS = 4
MAX_SENTENCE_WORDS = 100
MIN_LETTER_SHARE = 0.6
MIN_LOWERCASE_WORD_SHARE = 0.3


def fold_hyphenated_line_breaks(text: str, *, keep_line_break: bool = False) -> str:
    """Join words a PDF split across lines ("im-\\nportant" -> "important").

    The hyphen stays when the text itself spells the word with one elsewhere ("non-\\nsegmented"
    next to "non-segmented"), since that hyphen belongs to the word, not to the line break.
    With `keep_line_break` the break moves after the joined word, so lines keep their lengths.
    """
    lowered = text.lower()
    line_break = "\n" if keep_line_break else ""

    def join(match: re.Match[str]) -> str:
        left, right, right_letters = match.group(1), match.group(2), match.group(3)
        hyphenated = f"{left}-{right_letters}".lower()
        joined = f"{left}{right_letters}".lower()
        if right[0].isupper() or (hyphenated in lowered and joined not in lowered):
            return f"{left}-{right}{line_break}"
        return f"{left}{right}{line_break}"

    return _HYPHENATED_BREAK.sub(join, text)


def _is_table_row(line: str) -> bool:
    return line.count("|") >= 2 or " | " in line or bool(_TABLE_RULE.match(line))


def _blocks(text: str) -> Iterator[tuple[str, bool]]:
    """Paragraph-like blocks of a chunk, each as (text, is_list_item).

    Blank lines, bullets, headings and table rows end a block; other line breaks are PDF
    wraps and are joined, so a sentence wrapped over three lines is one sentence again.
    """
    lines = [
        line.strip()
        for line in fold_hyphenated_line_breaks(text, keep_line_break=True).splitlines()
    ]
    lengths = sorted(len(line) for line in lines if line)
    typical_length = lengths[len(lengths) // 2] if lengths else 0
    current: list[str] = []
    current_is_item = False

    def flush() -> Iterator[tuple[str, bool]]:
        nonlocal current, current_is_item
        if current:
            yield " ".join(current), current_is_item
        current, current_is_item = [], False

    for line in lines:
        if not line or _is_table_row(line):
            yield from flush()
            continue
        if _MARKDOWN_HEADING.match(line):
            yield from flush()
            yield line.lstrip("#").strip(), False
            continue
        bullet = _BULLET.match(line)
        if bullet:
            yield from flush()
            current, current_is_item = [line[bullet.end() :]], True
            continue
        if current and _is_real_break(current[-1], line, typical_length):
            yield from flush()
        current.append(line)
    yield from flush()


def _is_real_break(previous_line: str, line: str, typical_length: int) -> bool:
    """Whether a line break ends a paragraph or heading rather than wrapping a PDF line."""
    if len(previous_line) > _LONGEST_WRAPPED_LINE:
        return True  # text whose lines are paragraphs (Word, HTML, Markdown)
    if previous_line[-1] in _TERMINAL_PUNCTUATION:
        return False  # a sentence ending at the line end splits later anyway
    # A wrapped line runs to the wrap width; a line well short of it, without closing
    # punctuation, is a heading or label ("Syllabus"), which must not glue onto the text
    # after it. So is a numbered or title-case line before a capital ("4.1 Data Sources").
    if len(previous_line) < 0.6 * typical_length or len(previous_line.split()) <= 3:
        return True
    return line[0].isupper() and (
        bool(_SECTION_NUMBER.match(previous_line)) or _is_title_case(previous_line)
    )


def _is_title_case(line: str) -> bool:
    """Every word capitalized but the small ones title case leaves alone."""
    words = _WORD.findall(line)
    return bool(words) and all(
        word[0].isupper() or word.lower() in _TITLE_CASE_SMALL_WORDS for word in words
    )


def _tidy(text: str) -> str:
    text = _REFERENCE_MARKER.sub("", text)
    text = _WHITESPACE.sub(" ", text).strip()
    return _SPACE_BEFORE_PUNCTUATION.sub(r"\1", text)


def _split_block(block: str) -> list[str]:
    """Sentences of one paragraph, by Bling Fire's sentence breaker (measured on COVID-QA: the
    gold answer lies inside one sentence for 0.876 of questions, against 0.865 for sentencex,
    0.867 for pySBD and 0.872 for syntok, and it is the fastest but one)."""
    block = _FOOTNOTE_BEFORE_SENTENCE.sub(r"\1", _FOOTNOTE_AFTER_PERIOD.sub(".", block))
    return [
        sentence.strip()
        for piece in _SECTION_AFTER_SENTENCE.split(block)
        for sentence in blingfire.text_to_sentences(piece).split("\n")
        if sentence.strip()
    ]


def _is_answer_like(sentence: str) -> bool:
    """Drop fragments: too short or too long to read alone, or mostly digits and symbols."""
    words = sentence.split()
    if not MIN_SENTENCE_WORDS <= len(words) <= MAX_SENTENCE_WORDS:
        return False
    visible = [character for character in sentence if not character.isspace()]
    letters = sum(character.isalpha() for character in visible)
    if letters < MIN_LETTER_SHARE * len(visible):
        return False
    # Prose has lowercase words; titles, author lists and ALL-CAPS headings hardly any.
    long_words = [word for word in _WORD.findall(sentence) if len(word) >= 4]
    lowercase = sum(not word[0].isupper() for word in long_words)
    return lowercase >= MIN_LOWERCASE_WORD_SHARE * len(long_words)


def split_sentences(text: str) -> list[str]:
    """The readable sentences of a chunk, in order, with PDF wraps and hyphenation undone.

    A sentence the chunk boundary cut shows it with an ellipsis ("…and 47 cases."), so a
    quoted fragment never passes for a whole sentence.
    """
    sentences: list[str] = []
    blocks = list(_blocks(text))
    for block_index, (block, is_list_item) in enumerate(blocks):
        pieces = _split_block(_tidy(block))
        for piece_index, piece in enumerate(pieces):
            sentence = _LEADING_FOOTNOTE.sub("", _LEADING_LABEL.sub("", piece))
            sentence = _fix_drop_capital(sentence)
            if not _is_answer_like(sentence):
                continue
            if not is_list_item and sentence[-1] not in _SENTENCE_CLOSERS:
                # Not ending like a sentence: a heading, or cut off by the chunk's end.
                is_chunk_end = block_index == len(blocks) - 1 and piece_index == len(pieces) - 1
                if len(sentence.split()) <= 12 or not is_chunk_end:
                    continue
                sentence = f"{sentence}…"
            if not sentences and block_index == 0 and piece_index == 0 and sentence[0].islower():
                sentence = f"…{sentence}"  # the chunk starts mid-sentence
            sentences.append(sentence)
    return sentences


def _fix_drop_capital(sentence: str) -> str:
    """Rejoin a PDF drop capital with its word ("D espite" -> "Despite")."""
    match = _DROP_CAPITAL.match(sentence)
    return f"{match.group(1)}{sentence[match.end(1) + 1 :]}" if match else sentence


# --- Candidates: sentences, table rows, and a heading when a chunk has nothing else -------


@dataclass(frozen=True)
class _Candidate:
    text: str  # what is scored; quoted as is unless it is a table row
    source: int  # 1-based
    position: int  # index of the candidate within its source
    language: str
    row: TableRow | None = None


def _candidates_of(source: int, document: Document) -> list[_Candidate]:
    """A chunk's quotable pieces in order: its sentences, then its table rows (with their
    header); a chunk with neither (a title, a heading) offers its lines."""
    language = language_of(document.metadata.get("language"))
    lines = document.page_content.splitlines()
    # Only the CSV loader writes "column: value; column: value" rows; elsewhere such a line
    # is a label and its text ("p. Travel: This line item includes ...").
    csv_rows = [row for row in map(csv_row, lines) if row is not None] if _is_csv(document) else []
    prose = "\n".join("" if csv_row(line) else line for line in lines) if csv_rows else None
    texts: list[tuple[str, TableRow | None]] = [
        (sentence, None) for sentence in split_sentences(prose or document.page_content)
    ]
    texts += [(row.text, row) for row in [*pipe_table_rows(document.page_content), *csv_rows]]
    if not texts:
        texts = [(line, None) for line in _plain_lines(document.page_content)]
    return [
        _Candidate(text, source, position, language, row)
        for position, (text, row) in enumerate(texts)
    ]


def _is_csv(document: Document) -> bool:
    """Whether the chunk comes from a CSV file (its kind, from the chunks table, or else its
    file name)."""
    kind = document.metadata.get("kind")
    if kind is not None:
        return bool(kind == "csv")
    return str(document.metadata.get("file_name", "")).lower().endswith(".csv")


def _plain_lines(text: str) -> list[str]:
    """Lines of at least two words with letters, without Markdown heading marks."""
    lines = (_tidy(line.lstrip("#").strip()) for line in text.splitlines())
    return [line for line in lines if len(_WORD.findall(line)) >= 2]


# --- Answering ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ExtractiveAnswer:
    """The answer text, which sources it cites, and the picked pieces with their scores."""

    text: str
    cited: list[int]  # 1-based source numbers actually cited, in order of first citation
    sentences: list[tuple[str, int, float]]  # (sentence or row text, source number, score)
    weak: bool = False  # passages shown, none of which states the answer
    # The text in the order it was composed (a cited sentence group or table each, with the
    # space or blank line before it): what a reader is shown one after the other.
    parts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.parts:
            object.__setattr__(self, "parts", (self.text,))
        assert "".join(self.parts) == self.text, "the parts must spell the text"

    @property
    def found(self) -> bool:
        return bool(self.cited) and not self.weak


@dataclass(frozen=True)
class ScoringWeights:
    """How much each signal counts in a sentence's score (the first four sum to about one).

    Measured on COVID-QA, term overlap alone ranks the answer sentence first more often
    than embeddings alone (its questions reuse the papers' words); the embeddings carry
    paraphrased questions ("How much holiday do I get?" -> "25 days of paid annual leave").
    """

    sentence_similarity: float = 0.35
    chunk_similarity: float = 0.15
    term_overlap: float = 0.50
    source_rank: float = 0.03
    # How much a sentence's neighbours count in its embedding, and adjacent question terms
    # found adjacent in the sentence in its term overlap.
    neighbour_share: float = 0.2
    phrase_share: float = 0.3


@dataclass(frozen=True)
class EvidenceGate:
    """When the best candidates answer, when they are only related, when nothing is.

    A candidate answers when its score, which weighs its cosine to the question (alone and
    in its chunk) with the share of the question's rare-term weight it holds, clears a
    floor; when its cosine alone is high (a paraphrase: "How much holiday do I get?"); or
    when the keyword retriever ranks its chunk first and it holds nearly all of that weight:
    a table row or a German heading, which the English embedding model reads poorly.
    Anything weaker that still shares terms or meaning is shown as related passages, not as
    an answer. The floors trade wrong "not found"s for right ones; measured on COVID-QA
    (bench answer, 100 + 100 questions, seeds 7 and 11) a score floor of 0.46 with cosine
    0.6 gives 0.04 / 0.04 wrongly "not found" and 0.38 / 0.35 "not found" on unanswerable;
    0.55 gives about 0.2 and 0.7.
    """

    score: float = 0.46
    similarity: float = 0.6
    keyword_coverage: float = 0.8
    keyword_rank: int = 1
    related_coverage: float = 0.3
    # Related passages are shown rather than "not found" down to this cosine: a paraphrase
    # the small model scores at 0.44 ("How much holiday do I get each year?" -> "25 days of
    # paid annual leave") is then still in front of the user, marked as not an answer.
    related_similarity: float = 0.4

    def answers(
        self, score: float, similarity: float, coverage: float, keyword_rank: int | None
    ) -> bool:
        keyword_first = keyword_rank is not None and keyword_rank <= self.keyword_rank
        return (
            score >= self.score
            or similarity >= self.similarity
            or (keyword_first and coverage >= self.keyword_coverage)
        )

    def relates(self, coverage: float, similarity: float) -> bool:
        return coverage >= self.related_coverage or similarity >= self.related_similarity


@dataclass(frozen=True)
class AnswerLength:
    """How much to quote: a fact gets a sentence or two; "explain", "describe", "list", "in
    detail" and "what are the ...s" questions get up to a paragraph per cited source."""

    fact_sentences: int = 2
    fact_words: int = 80
    detail_sources: int = 3
    detail_words_per_source: int = 90
    neighbours: int = 2  # sentences around a pick that make its paragraph readable


_WANTS_DETAIL = re.compile(
    r"\b(?:in detail|detailed|details|explain\w*|describe\w*|elaborate|list\w*|overview|"
    r"summari[sz]e|(?:what|which) (?:are|were) (?:the|some|all)\b(?:\s+\w+)*?\s+\w{3,}s)\b",
    re.IGNORECASE,
)


def wants_detail(question: str) -> bool:
    """Whether the question asks for an explanation or a list rather than one fact."""
    return bool(_WANTS_DETAIL.search(question))


@dataclass(frozen=True)
class _Scored:
    scores: np.ndarray  # combined score per candidate
    similarity: np.ndarray  # cosine of the candidate alone to the question
    coverage: np.ndarray  # share of the question's term weight the candidate holds
    vectors: np.ndarray  # normalized candidate embeddings


class ExtractiveAnswerer:
    """Answers with the retrieved sentences that best match the question, cited [n].

    The cosine floors suit all-MiniLM-L6-v2; another embedding model has its own cosine
    scale, so `gate` may need setting for it.
    """

    def __init__(
        self,
        embeddings: Embeddings,
        *,
        gate: EvidenceGate | None = None,
        length: AnswerLength | None = None,
        relative_floor: float = 0.75,
        duplicate_similarity: float = 0.9,
        weights: ScoringWeights | None = None,
        resolve_references: bool = True,
        cache_size: int = 4096,
    ) -> None:
        self.embeddings = embeddings
        self.gate = gate or EvidenceGate()
        self.length = length or AnswerLength()
        # Picks after the first must score at least this share of the best one, so a clear
        # answer is not padded with loosely related sentences.
        self.relative_floor = relative_floor
        self.duplicate_similarity = duplicate_similarity
        self.weights = weights or ScoringWeights()
        self.resolve_references = resolve_references
        # Sentence vectors by text, least recently used first (4096 take about 6 MB).
        self._cache: VectorCache[np.ndarray] = VectorCache(cache_size)

    def answer(
        self, question: str, sources: Sequence[Document], *, topic: str = "", aspect: str = ""
    ) -> ExtractiveAnswer:
        """Pick and cite what answers the question (CPU-bound: embeds the sentences).

        A follow-up names the `topic` it was resolved to and its own `aspect` ("weaknesses"
        of the dense passage retriever): a sentence answers it only if it holds the aspect
        and its passage is about the topic. Otherwise the topic's terms, which fill the
        rewritten question, would let the earlier question's passages answer it again."""
        candidates = [
            candidate
            for number, source in enumerate(sources, start=1)
            for candidate in _candidates_of(number, source)
        ]
        if not question.strip() or not candidates:
            return _not_found()
        scored = self._score(question, candidates, len(sources))
        keyword_ranks = [_keyword_rank(sources[c.source - 1]) for c in candidates]
        on_topic, holds_aspect = _follow_up_fit(candidates, topic, aspect)
        eligible = on_topic & holds_aspect
        answering = np.array(
            [
                bool(eligible[i])
                and self.gate.answers(
                    float(scored.scores[i]),
                    float(scored.similarity[i]),
                    float(scored.coverage[i]),
                    keyword_ranks[i],
                )
                for i in range(len(candidates))
            ]
        )
        if answering.any():
            picked = self._pick(question, candidates, scored, answering, eligible)
            return _compose([(candidates[i], float(scored.scores[i])) for i in picked])
        related = [
            i
            for i in np.argsort(-scored.scores, kind="stable")
            if on_topic[i]
            and self.gate.relates(float(scored.coverage[i]), float(scored.similarity[i]))
        ]
        if not related:
            return _not_found()
        return _weak(
            [
                (candidates[i], float(scored.scores[i]))
                for i in _one_per_source(candidates, related, 2)
            ]
        )

    async def aanswer(
        self, question: str, sources: Sequence[Document], *, topic: str = "", aspect: str = ""
    ) -> ExtractiveAnswer:
        """`answer` in a worker thread, so embedding doesn't block the event loop."""
        return await asyncio.to_thread(
            functools.partial(self.answer, topic=topic, aspect=aspect), question, list(sources)
        )

    # --- scoring and picking ----------------------------------------------------------------

    def _score(self, question: str, candidates: list[_Candidate], source_count: int) -> _Scored:
        """Each candidate's score (about 0..1): embedding similarity of the sentence in its
        context and of its chunk, overlap of the question's terms, and its source's rank."""
        question_vector = _normalized(np.asarray(self.embeddings.embed_query(question)))
        vectors = self._sentence_vectors([c.text for c in candidates])
        similarity = vectors @ question_vector
        w = self.weights
        sources = np.array([c.source for c in candidates])

        # A sentence read with its neighbours: an answer often leaves its subject to the
        # sentence before ("It lasts 14 days.").
        in_context = vectors.copy()
        for index in range(len(candidates)):
            for neighbour in (index - 1, index + 1):
                if 0 <= neighbour < len(candidates) and sources[neighbour] == sources[index]:
                    in_context[index] += w.neighbour_share * vectors[neighbour]
        in_context_similarity = (in_context @ question_vector) / np.linalg.norm(in_context, axis=1)

        # A chunk's vector is the mean of its sentences': whether the passage as a whole is
        # about the question.
        chunk_similarity = np.zeros(len(candidates))
        for number in np.unique(sources):
            members = sources == number
            chunk_vector = _normalized(vectors[members].mean(axis=0))
            chunk_similarity[members] = float(chunk_vector @ question_vector)

        coverage, phrases = _term_overlap(question, candidates)
        overlap = (coverage + w.phrase_share * phrases) / (1.0 + w.phrase_share)
        rank_prior = 1.0 - (sources - 1) / max(source_count, 1)
        scores = (
            w.sentence_similarity * np.clip(in_context_similarity, 0.0, 1.0)
            + w.chunk_similarity * np.clip(chunk_similarity, 0.0, 1.0)
            + w.term_overlap * overlap
            + w.source_rank * rank_prior
        )
        return _Scored(scores, similarity, coverage, vectors)

    def _sentence_vectors(self, sentences: list[str]) -> np.ndarray:
        """Normalized embeddings of the sentences, from the cache where possible: follow-up
        questions and popular documents bring the same chunks back again and again."""
        known = self._cache.get_many(dict.fromkeys(sentences))
        missing = list(dict.fromkeys(text for text in sentences if text not in known))
        if missing:
            embedded = np.asarray(self.embeddings.embed_documents(missing), dtype=np.float32)
            embedded /= np.maximum(np.linalg.norm(embedded, axis=1, keepdims=True), 1e-12)
            fresh = dict(zip(missing, embedded, strict=True))
            known.update(fresh)
            self._cache.put_many(fresh)
        return np.stack([known[text] for text in sentences])

    def _pick(
        self,
        question: str,
        candidates: list[_Candidate],
        scored: _Scored,
        answering: np.ndarray,
        eligible: np.ndarray,
    ) -> list[int]:
        """The best answering candidate, then other eligible ones close to its score,
        without near-duplicates; as many as the question's kind asks for."""
        detail = wants_detail(question)
        limit = self.length.detail_sources if detail else self.length.fact_sentences
        budget = (
            self.length.detail_words_per_source * self.length.detail_sources
            if detail
            else self.length.fact_words
        )
        scores, vectors = scored.scores, scored.vectors
        order = [int(i) for i in np.argsort(-scores, kind="stable")]
        best = next(i for i in order if answering[i])
        floor = self.relative_floor * float(scores[best])
        picked = [best]
        words = len(candidates[best].text.split())
        for index in order:
            if len(picked) >= limit or scores[index] < floor:
                break
            if not eligible[index] or index in picked:
                continue
            if _is_duplicate(candidates, vectors, picked, index, self):
                continue
            if detail and any(candidates[p].source == candidates[index].source for p in picked):
                continue  # one paragraph per source, built around its best sentence
            length = len(candidates[index].text.split())
            if words + length > budget:
                continue
            picked.append(index)
            words += length
        if detail:
            return self._with_paragraphs(candidates, vectors, picked)
        if self.resolve_references:
            picked = self._with_referents(candidates, picked, words, budget)
        return picked

    def _with_paragraphs(
        self, candidates: list[_Candidate], vectors: np.ndarray, picked: list[int]
    ) -> list[int]:
        """Each prose pick with the sentences around it in its source, up to the words a
        source may take: the paragraph that makes it readable."""
        chosen = list(picked)
        for index in picked:
            if candidates[index].row is not None:
                continue
            words = len(candidates[index].text.split())
            for step in range(1, self.length.neighbours + 1):
                for neighbour in (index + step, index - step):
                    if not 0 <= neighbour < len(candidates) or neighbour in chosen:
                        continue
                    if (
                        candidates[neighbour].source != candidates[index].source
                        or candidates[neighbour].row is not None
                        or _is_duplicate(candidates, vectors, chosen, neighbour, self)
                    ):
                        continue
                    length = len(candidates[neighbour].text.split())
                    if words + length > self.length.detail_words_per_source:
                        continue
                    chosen.append(neighbour)
                    words += length
        return chosen

    def _with_referents(
        self, candidates: list[_Candidate], picked: list[int], words: int, budget: int
    ) -> list[int]:
        """Add the sentence before a pick that opens by referring to it ("This suggests
        ...", "They ..."): alone it reads as a riddle. One such sentence at most, within the
        word budget."""
        texts = {_key(candidates[index].text) for index in picked}
        for index in picked:
            previous = index - 1
            if (
                _REFERRING_OPENER.match(candidates[index].text)
                and previous >= 0
                and previous not in picked
                and candidates[previous].source == candidates[index].source
                and candidates[previous].row is None
                and _key(candidates[previous].text) not in texts
                and words + len(candidates[previous].text.split()) <= budget
            ):
                return [*picked, previous]
        return picked


def _follow_up_fit(
    candidates: list[_Candidate], topic: str, aspect: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per candidate: whether its passage holds at least half the topic's terms, and whether
    it holds one of the aspect's terms (both true when there is no topic or aspect)."""
    count = len(candidates)
    on_topic, holds_aspect = np.ones(count, dtype=bool), np.ones(count, dtype=bool)
    if not topic.strip() and not aspect.strip():
        return on_topic, holds_aspect
    terms = [set(content_terms(c.text, c.language)) for c in candidates]
    passage_terms: dict[int, set[str]] = {}
    for candidate, candidate_terms in zip(candidates, terms, strict=True):
        passage_terms.setdefault(candidate.source, set()).update(candidate_terms)
    for index, candidate in enumerate(candidates):
        topic_terms = set(content_terms(topic, candidate.language))
        aspect_terms = set(content_terms(aspect, candidate.language))
        if topic_terms:
            found = len(topic_terms & passage_terms[candidate.source])
            on_topic[index] = found * 2 >= len(topic_terms)
        if aspect_terms:
            holds_aspect[index] = bool(aspect_terms & terms[index])
    return on_topic, holds_aspect


def _keyword_rank(document: Document) -> int | None:
    rank = document.metadata.get("keyword_rank")
    return int(rank) if isinstance(rank, int | float) else None


def _key(text: str) -> str:
    return _WHITESPACE.sub(" ", text.lower())


def _is_duplicate(
    candidates: list[_Candidate],
    vectors: np.ndarray,
    chosen: list[int],
    index: int,
    answerer: ExtractiveAnswerer,
) -> bool:
    """The same text (chunk overlap hands sentences over twice) or nearly the same meaning."""
    key = _key(candidates[index].text)
    if any(_key(candidates[other].text) == key for other in chosen):
        return True
    return bool(chosen) and float(np.max(vectors[chosen] @ vectors[index])) > (
        answerer.duplicate_similarity
    )


def _one_per_source(candidates: list[_Candidate], order: list[int], count: int) -> list[int]:
    picked: list[int] = []
    texts: set[str] = set()
    for index in order:
        if any(candidates[p].source == candidates[index].source for p in picked):
            continue
        if _key(candidates[index].text) in texts:
            continue
        picked.append(int(index))
        texts.add(_key(candidates[index].text))
        if len(picked) == count:
            break
    return picked


def _term_overlap(question: str, candidates: list[_Candidate]) -> tuple[np.ndarray, np.ndarray]:
    """Per candidate: the share of the question's term weight it holds, and the share of the
    question's adjacent term pairs it holds adjacent ("incubation period"), both in [0, 1].

    Terms weigh by their IDF over these candidates, so rare ones (names, numbers, jargon)
    count most; a question term found in no candidate keeps the highest weight, so a question
    about something absent scores low everywhere. The question is read in each candidate's
    language.
    """
    question_terms = {
        language: list(dict.fromkeys(content_terms(question, language)))
        for language in {c.language for c in candidates}
    }
    candidate_terms = [content_terms(c.text, c.language) for c in candidates]
    document_frequency = Counter(term for terms in candidate_terms for term in set(terms))
    count = len(candidates)
    coverage = np.zeros(count)
    phrases = np.zeros(count)
    for index, (candidate, terms) in enumerate(zip(candidates, candidate_terms, strict=True)):
        asked = question_terms[candidate.language]
        if not asked:
            continue
        weights = [math.log(1.0 + count / (0.5 + document_frequency.get(t, 0))) for t in asked]
        term_set = set(terms)
        held = sum(weight for term, weight in zip(asked, weights, strict=True) if term in term_set)
        coverage[index] = held / sum(weights)
        pairs = set(itertools.pairwise(asked))
        if pairs:
            phrases[index] = len(pairs & set(itertools.pairwise(terms))) / len(pairs)
    return coverage, phrases


def _normalized(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def _runs(picked: list[tuple[_Candidate, float]]) -> list[list[tuple[_Candidate, float]]]:
    """Picks that follow each other in one source, in their text order; best run first."""
    runs: list[list[tuple[_Candidate, float]]] = []
    for pick in sorted(picked, key=lambda pick: (pick[0].source, pick[0].position)):
        previous = runs[-1][-1][0] if runs else None
        if (
            previous is not None
            and previous.source == pick[0].source
            and previous.position + 1 == pick[0].position
        ):
            runs[-1].append(pick)
        else:
            runs.append([pick])
    runs.sort(key=lambda run: -max(score for _, score in run))
    return runs


def _compose(picked: list[tuple[_Candidate, float]], separator: str = " ") -> ExtractiveAnswer:
    """Order the picks to read naturally and cite them.

    Runs of one source stay together in their text order, best run first; consecutive
    sentences of one source share one citation; table rows of one table are one table.
    """
    ordered = [pick for run in _runs(picked) for pick in run]
    groups: list[tuple[int, list[_Candidate]]] = []
    for candidate, _ in ordered:
        same_kind = groups and (groups[-1][1][-1].row is None) == (candidate.row is None)
        if groups and groups[-1][0] == candidate.source and same_kind:
            groups[-1][1].append(candidate)
        else:
            groups.append((candidate.source, [candidate]))
    parts: list[str] = []
    for group in (_cited_group(source, members) for source, members in groups):
        table = group.startswith("|")
        joiner = "\n\n" if parts and (table or parts[-1].endswith("|")) else separator
        parts.append(f"{joiner}{group}" if parts else group)
    return ExtractiveAnswer(
        text="".join(parts),
        cited=list(dict.fromkeys(source for source, _ in groups)),
        sentences=[(candidate.text, candidate.source, score) for candidate, score in ordered],
        parts=tuple(parts),
    )


def _cited_group(source: int, members: list[_Candidate]) -> str:
    rows = [member.row for member in members if member.row is not None]
    if rows:
        return "\n\n".join(render(group, f"[{source}]") for group in _by_header(rows))
    return _cited(" ".join(member.text for member in members), source)


def _by_header(rows: list[TableRow]) -> Iterator[list[TableRow]]:
    """Consecutive rows that share a header, as one table each."""
    for _, group in itertools.groupby(rows, key=lambda row: row.header):
        yield list(group)


def _cited(text: str, source: int) -> str:
    """Put the citation before the closing period: "... 14 days [2]."."""
    match = re.search(r"[.!?]+$", text)
    if match:
        return f"{text[: match.start()]} [{source}]{match.group(0)}"
    if text[-1] in _SENTENCE_CLOSERS or text.endswith("…"):
        return f"{text} [{source}]"
    return f"{text} [{source}]."  # a list item or a heading


def _weak(picked: list[tuple[_Candidate, float]]) -> ExtractiveAnswer:
    """The related passages, cited, after a plain statement that none of them answers."""
    composed = _compose(picked, separator="\n\n")
    return ExtractiveAnswer(
        text=f"{WEAK_EVIDENCE_TEXT}\n\n{composed.text}",
        cited=composed.cited,
        sentences=composed.sentences,
        weak=True,
        parts=(f"{WEAK_EVIDENCE_TEXT}\n\n", *composed.parts),
    )


def _not_found() -> ExtractiveAnswer:
    return ExtractiveAnswer(text=NOT_FOUND_TEXT, cited=[], sentences=[])
