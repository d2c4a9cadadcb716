"""Extractive answers: the retrieved sentences that best answer the question, cited.

No instruction-following chat model can run on the machines this copilot targets, so the
default answerer does not write: it picks, from the retrieved chunks, the few sentences that
answer the question and streams them with a citation ``[n]`` to the source each came from.
Every word of the answer is therefore a quotation the user can check against its source.

Sentences are scored by the embedding model the index already uses (cosine to the question,
and to the chunk the sentence sits in) plus a lexical overlap of the question's rarer terms,
which catches names, numbers and jargon that a small embedding model blurs. When nothing
scores above a floor, the answer says plainly that the knowledge doesn't have it.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import re
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.runnables import Runnable, RunnableGenerator

from copilot.knowledge.embeddings import VectorCache

NOT_FOUND_TEXT = "I couldn't find this in the knowledge available to you."

# --- Sentence splitting --------------------------------------------------------------------

# Words whose trailing period never ends a sentence, compared lowercased without the period.
_ABBREVIATION_WORDS = """
    al approx apr aug ca cf ch chap co corp dec dept dr eq eqs esp feb fig figs inc incl jan jr
    jul jun ltd mr mrs ms mt no nos nov oct pp prof ref refs resp sec sect sep sept sr st tab
    vol vols vs viz
"""
_ABBREVIATIONS = frozenset(_ABBREVIATION_WORDS.split())
# "e.g.", "i.e.", "U.S.", "a.m.": letters each followed by a period.
_DOTTED_ABBREVIATION = re.compile(r"^(?:[A-Za-z]\.){2,}$")
# A period, '!' or '?' (with closing quotes or brackets, or a footnote number right after a
# word: "in the end.5 Each") followed by space and what can open a sentence: a capital, a
# digit, or an opening quote or bracket.
_SENTENCE_END = re.compile(r"(?:[.!?]+[\"'”’)\]]*|(?<=[a-z)])\.\d{1,2})\s+(?=[\"'“‘(\[]?[A-Z0-9])")
_FOOTNOTE_AFTER_PERIOD = re.compile(r"(?<=[a-z)])\.\d{1,2}$")
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
    sentences: list[str] = []
    start = 0
    for boundary in _SENTENCE_END.finditer(block):
        if _is_abbreviation(block[start : boundary.start() + 1]):
            continue
        # A footnote number after the period goes with the boundary: "... the end.5".
        sentences.append(_FOOTNOTE_AFTER_PERIOD.sub(".", block[start : boundary.end()].strip()))
        start = boundary.end()
    sentences.append(block[start:].strip())
    return [sentence for sentence in sentences if sentence]


def _is_abbreviation(text_up_to_period: str) -> bool:
    """Whether the period closing this text belongs to an abbreviation or an initial."""
    if not text_up_to_period.endswith("."):
        return False  # '!' and '?' always end a sentence
    words = text_up_to_period.rsplit(None, 1)
    last_word = words[-1].lstrip("(\"'“‘[") if words else ""
    bare = last_word.rstrip(".")
    if not bare:
        return False
    if bare.lower() in _ABBREVIATIONS or _DOTTED_ABBREVIATION.match(last_word):
        return True
    return len(bare) == 1 and bare.isupper()  # an initial: "J. Smith", "P. alecto"


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


# --- Lexical overlap --------------------------------------------------------------------

_STOPWORD_TEXT = """
    a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing done down during each either
    else ever few for from further get gets got had has have having he her here hers herself
    him himself his how however i if in into is it its itself just least less let like made
    make many may me might more most much must my myself need no nor not now of off often on
    once one only or other others our ours ourselves out over own per please rather same say
    says shall she should since so some such tell than that the their theirs them themselves
    then there therefore these they this those though through thus to too under until up upon
    us use used using very via was we were what whatever when whenever where whereas wherever
    whether which while who whom whose why will with within without would yet you your yours
    yourself yourselves know known describe explain give list mean means main kind type types
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_TOKEN = re.compile(r"[a-z0-9]+")


_SUFFIX_TEXT = "ations ation ions ion ings ing edly ed ies es ly s e y"  # longest first
_SUFFIXES = tuple(_SUFFIX_TEXT.split())


def _stem(token: str) -> str:
    """A deliberately light suffix stripper, so "vaccines", "vaccine" and "vaccination" meet,
    as do "infected" and "infections" (no stemming library is a dependency)."""
    if len(token) <= 3 or not token.isalpha():
        return token
    for suffix in _SUFFIXES:
        if token.endswith(suffix) and len(token) - len(suffix) >= 3:
            if suffix == "s" and token.endswith(("ss", "us", "is")):
                return token
            return token[: -len(suffix)]
    return token


def content_terms(text: str) -> list[str]:
    """Stemmed, lowercased words of a text without stopwords."""
    return [_stem(token) for token in _TOKEN.findall(text.lower()) if token not in _STOPWORDS]


# --- Answering ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ExtractiveAnswer:
    """The answer text, which sources it cites, and the picked sentences with their scores."""

    text: str
    cited: list[int]  # 1-based source numbers actually cited, in order of first citation
    sentences: list[tuple[str, int, float]]  # (sentence, source number, score)

    @property
    def found(self) -> bool:
        return bool(self.cited)


@dataclass(frozen=True)
class _Candidate:
    text: str
    source: int  # 1-based
    position: int  # index of the sentence within its source


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
class _Scored:
    scores: np.ndarray  # combined score per candidate
    similarity: np.ndarray  # cosine of the candidate alone to the question
    vectors: np.ndarray  # normalized candidate embeddings


class ExtractiveAnswerer:
    """Answers with the retrieved sentences that best match the question, cited [n].

    The floors suit all-MiniLM-L6-v2; another embedding model has its own cosine scale, so
    `min_similarity` may need setting for it.
    """

    def __init__(
        self,
        embeddings: Embeddings,
        *,
        max_sentences: int = 3,
        min_score: float = 0.2,
        max_words: int = 120,
        min_similarity: float = 0.4,
        relative_floor: float = 0.75,
        duplicate_similarity: float = 0.9,
        weights: ScoringWeights | None = None,
        resolve_references: bool = True,
        cache_size: int = 4096,
    ) -> None:
        self.embeddings = embeddings
        self.max_sentences = max_sentences
        self.min_score = min_score
        self.max_words = max_words
        # Some sentence must mean roughly what the question asks: shared words alone ("How
        # many employees does the company have?" against a leave policy) are not an answer.
        self.min_similarity = min_similarity
        # Sentences after the first must score at least this share of the best one, so a
        # clear answer is not padded with loosely related sentences.
        self.relative_floor = relative_floor
        self.duplicate_similarity = duplicate_similarity
        self.weights = weights or ScoringWeights()
        self.resolve_references = resolve_references
        # Sentence vectors by text, least recently used first (4096 take about 6 MB).
        self._cache: VectorCache[np.ndarray] = VectorCache(cache_size)

    def answer(self, question: str, sources: Sequence[Document]) -> ExtractiveAnswer:
        """Pick and cite the sentences that answer the question (CPU-bound: embeds them)."""
        candidates = [
            _Candidate(sentence, number, position)
            for number, source in enumerate(sources, start=1)
            for position, sentence in enumerate(split_sentences(source.page_content))
        ]
        if not question.strip() or not candidates:
            return _not_found()
        scored = self._score(question, candidates, len(sources))
        if float(scored.similarity.max()) < self.min_similarity:
            return _not_found()
        picked = self._pick(candidates, scored)
        if not picked:
            return _not_found()
        return _compose([(candidates[index], float(scored.scores[index])) for index in picked])

    async def aanswer(self, question: str, sources: Sequence[Document]) -> ExtractiveAnswer:
        """`answer` in a worker thread, so embedding doesn't block the event loop."""
        return await asyncio.to_thread(self.answer, question, list(sources))

    async def astream(self, question: str, sources: Sequence[Document]) -> AsyncIterator[str]:
        """The answer text in word-sized pieces that join to exactly `answer().text`."""
        answer = await self.aanswer(question, sources)
        for piece in stream_pieces(answer.text):
            yield piece
            await asyncio.sleep(0)  # let the UI flush between pieces

    def as_runnable(self) -> Runnable[dict[str, Any], str]:
        """A LangChain Runnable over {"question", "sources"} that streams the answer text."""

        def generate(requests: Iterator[dict[str, Any]]) -> Iterator[str]:
            for request in requests:
                answer = self.answer(request["question"], request["sources"])
                yield from stream_pieces(answer.text)

        async def agenerate(requests: AsyncIterator[dict[str, Any]]) -> AsyncIterator[str]:
            async for request in requests:
                async for piece in self.astream(request["question"], request["sources"]):
                    yield piece

        return RunnableGenerator(generate, agenerate, name="ExtractiveAnswer")

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

        overlap = _term_overlap(question, [c.text for c in candidates], w.phrase_share)
        rank_prior = 1.0 - (sources - 1) / max(source_count, 1)
        scores = (
            w.sentence_similarity * np.clip(in_context_similarity, 0.0, 1.0)
            + w.chunk_similarity * np.clip(chunk_similarity, 0.0, 1.0)
            + w.term_overlap * overlap
            + w.source_rank * rank_prior
        )
        return _Scored(scores, similarity, vectors)

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

    def _pick(self, candidates: list[_Candidate], scored: _Scored) -> list[int]:
        """The best-scoring sentences above the floors, without near-duplicates, within the
        word budget (the best one is always kept, even when it alone exceeds it)."""
        scores, vectors = scored.scores, scored.vectors
        order = np.argsort(-scores, kind="stable")
        best = float(scores[order[0]])
        if best < self.min_score:
            return []
        floor = max(self.min_score, self.relative_floor * best)
        picked: list[int] = []
        seen_texts: set[str] = set()
        words = 0
        for index in order:
            if len(picked) >= self.max_sentences or scores[index] < floor:
                break
            text_key = _WHITESPACE.sub(" ", candidates[index].text.lower())
            if text_key in seen_texts:
                continue
            if picked and float(np.max(vectors[picked] @ vectors[index])) > (
                self.duplicate_similarity
            ):
                continue
            length = len(candidates[index].text.split())
            if picked and words + length > self.max_words:
                continue
            picked.append(int(index))
            seen_texts.add(text_key)
            words += length
        if self.resolve_references:
            picked = self._with_referents(candidates, picked, seen_texts, words)
        return picked

    def _with_referents(
        self, candidates: list[_Candidate], picked: list[int], seen_texts: set[str], words: int
    ) -> list[int]:
        """Add the sentence before a pick that opens by referring to it ("This suggests
        ...", "They ..."): alone it reads as a riddle. One such sentence at most, within the
        word budget."""
        for index in picked:
            previous = index - 1
            if (
                _REFERRING_OPENER.match(candidates[index].text)
                and previous >= 0
                and previous not in picked
                and candidates[previous].source == candidates[index].source
                and _WHITESPACE.sub(" ", candidates[previous].text.lower()) not in seen_texts
                and words + len(candidates[previous].text.split()) <= self.max_words
            ):
                return [*picked, previous]
        return picked


def _term_overlap(question: str, sentences: list[str], phrase_share: float) -> np.ndarray:
    """Share of the question's term weight each sentence contains, in [0, 1].

    Terms weigh by their IDF over these sentences, so rare ones (names, numbers, jargon)
    count most; a question term found in no sentence keeps the highest weight, so a question
    about something absent scores low everywhere. Adjacent question terms found adjacent in
    the sentence ("incubation period") add a phrase bonus.
    """
    question_terms = list(dict.fromkeys(content_terms(question)))
    if not question_terms:
        return np.zeros(len(sentences))
    sentence_terms = [content_terms(sentence) for sentence in sentences]
    document_frequency = Counter(term for terms in sentence_terms for term in set(terms))
    count = len(sentences)
    weights = {
        term: math.log(1.0 + count / (0.5 + document_frequency.get(term, 0)))
        for term in question_terms
    }
    total = sum(weights.values())
    question_pairs = set(itertools.pairwise(question_terms))
    overlap = np.zeros(len(sentences))
    for index, terms in enumerate(sentence_terms):
        term_set = set(terms)
        unigrams = sum(weights[term] for term in question_terms if term in term_set) / total
        phrases = 0.0
        if question_pairs:
            phrases = len(question_pairs & set(itertools.pairwise(terms))) / len(question_pairs)
        overlap[index] = (unigrams + phrase_share * phrases) / (1.0 + phrase_share)
    return overlap


def _normalized(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def _compose(picked: list[tuple[_Candidate, float]]) -> ExtractiveAnswer:
    """Order the picks to read naturally and cite them.

    Picks that follow each other in one source stay together in their text order (a run);
    runs come best first. Consecutive sentences of one source share one citation.
    """
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
    ordered = [pick for run in runs for pick in run]

    groups: list[tuple[int, list[str]]] = []
    for candidate, _ in ordered:
        if groups and groups[-1][0] == candidate.source:
            groups[-1][1].append(candidate.text)
        else:
            groups.append((candidate.source, [candidate.text]))
    return ExtractiveAnswer(
        text=" ".join(_cited(" ".join(sentences), source) for source, sentences in groups),
        cited=list(dict.fromkeys(source for source, _ in groups)),
        sentences=[(candidate.text, candidate.source, score) for candidate, score in ordered],
    )


def _cited(text: str, source: int) -> str:
    """Put the citation before the closing period: "... 14 days [2]."."""
    match = re.search(r"[.!?]+$", text)
    if match:
        return f"{text[: match.start()]} [{source}]{match.group(0)}"
    if text[-1] in _SENTENCE_CLOSERS or text.endswith("…"):
        return f"{text} [{source}]"
    return f"{text} [{source}]."  # a list item


def _not_found() -> ExtractiveAnswer:
    return ExtractiveAnswer(text=NOT_FOUND_TEXT, cited=[], sentences=[])


def stream_pieces(text: str) -> Iterator[str]:
    """Token-like pieces of a text (each word with the whitespace after it)."""
    for match in re.finditer(r"\s*\S+\s*", text):
        yield match.group(0)
