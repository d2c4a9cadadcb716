"""Follow-up questions without a chat model: what to retrieve, and which earlier question
a follow-up was taken to refer to.

A follow-up that points back with a pronoun ("And what are its weaknesses?") asks a new
thing about the earlier question's *topic*, not about its aspect: searching the whole
earlier question ("How is BERT pre-trained?") brings back the pre-training passages again.
So the pronoun is replaced by the earlier question's topic ("And what are BERT's
weaknesses?"). An elliptic follow-up without a pronoun ("And in Asia?", "what about
contractors?") keeps the earlier question's aspect, so it is searched with the whole
earlier question, as before.

The topic of a question is its name-like words (capitalised words, acronyms, words with
digits: "BERT", "COVID-19", "Juicy Apples"), else its content words without question
words and auxiliaries ("When do replacement laptops arrive?" -> "replacement laptops
arrive"). This is a heuristic, not a parser: no tagger runs offline here (spaCy's and
NLTK's models are downloads).

When the last two earlier questions have different topics, either may be meant. Each is
tried: the follow-up with that topic is searched, and the one whose passages hold more of
the follow-up's own terms (beside the topic's) wins. A tie (often both zero) is ambiguous:
the most recent is taken and the answer says so.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from langchain_core.documents import Document

from copilot.search.keyword_embedded import query_terms
from copilot.search.language import detect_language

#: Searches one query under the asker's scope: what `resolve_follow_up` tries a topic with.
Retrieve = Callable[[str], Awaitable[list[Document]]]

_REFERS_BACK = re.compile(
    r"^\s*(and|also|but|so|what about|how about)\b"
    r"|\b(it|its|they|them|their|this|that|these|those|he|she|his|her|there)\b",
    re.IGNORECASE,
)
# Words that stand for an earlier topic ("this", "that" only closing the question: "Who
# approves that?"; elsewhere they are as often a determiner or a conjunction).
_PRONOUN = re.compile(
    r"\b(it|its|they|them|their|theirs|he|him|his|she|her"
    r"|(?:this|that|these|those)(?=\s*[?.!]*\s*$))\b",
    re.IGNORECASE,
)
_POSSESSIVE_S = re.compile(r"['’]s$")
_POSSESSIVE = frozenset({"its", "their", "theirs", "his", "her"})
_WORD = re.compile(r"[^\W_](?:[\w'’.-]*[^\W_])?")
# Words that are no part of a topic: question words, auxiliaries, pronouns, fillers.
_FUNCTION_WORD_TEXT = """
    a about above after again all also am an and any are as at be been being before below
    between both but by can could did do does doing during each either else ever far for
    from had has have having he her here hers him his how i if in into is it its just let
    like long may me might more most much must my no nor not now of off often on once only
    or other our out over own per please same shall she should so some soon such tell than
    that the their them then there these they this those through to too under until up us
    very was we were what when where whether which while who whom whose why will with
    would you your know explain describe give show list find say said mean means
"""
_FUNCTION_WORDS = frozenset(_FUNCTION_WORD_TEXT.split()) | {"detail", "details", "detailed"}
# Words that open a clause inside a question ("Explain how ...", "Tell me why ...").
_CLAUSE_OPENERS = frozenset(["how", "why", "when", "where", "whether", "what", "which"])
_AUXILIARY_TEXT = "is are was were be been being do does did has have had can could should will"
_AUXILIARIES = frozenset(_AUXILIARY_TEXT.split())


def looks_like_follow_up(question: str) -> bool:
    """Short questions and ones that point back ("it", "and what about") need context."""
    return len(question.split()) <= 4 or bool(_REFERS_BACK.search(question))


@dataclass(frozen=True)
class Resolved:
    """A question as it is searched and answered, and what it was taken to refer to."""

    question: str  # the standalone question
    topic: str  # what later pronouns refer to
    referent: str | None = None  # the earlier question a follow-up was resolved against
    pronoun: str | None = None  # the word taken to mean `topic`
    ambiguous: bool = False  # another earlier question was as plausible a referent
    aspect: str = ""  # what a follow-up asks of the topic, in its own words ("weaknesses")

    @property
    def notice(self) -> str:
        """What the answer says first when the referent was a guess between two."""
        if not (self.ambiguous and self.referent and self.pronoun):
            return ""
        referent = self.referent.replace("[", "(").replace("]", ")")
        return f"Taking '{self.pronoun}' to mean {self.topic} (from “{referent}”): "


def topic_of(question: str) -> str:
    """The words of a question a later "it" refers to (see the module docstring)."""
    words = [_POSSESSIVE_S.sub("", w) for w in _WORD.findall(question)]
    names = [w for position, w in enumerate(words) if _is_name_like(w, position == 0)]
    if names:
        return " ".join(dict.fromkeys(names))
    subject = _subject_of(words)
    content = [w for w in subject if w.lower() not in _FUNCTION_WORDS]
    return " ".join(dict.fromkeys(content)) or question.strip()


def _subject_of(words: list[str]) -> list[str]:
    """The words of an embedded "how/why/when ... <subject> is <verb>" clause that name its
    subject ("Explain in detail how the dense passage retriever is trained" -> "the dense
    passage retriever"): what is asked of the subject (being trained) is the aspect."""
    lowered = [w.lower() for w in words]
    start = next((i + 1 for i, w in enumerate(lowered) if i > 0 and w in _CLAUSE_OPENERS), 0)
    if start == 0:
        return words
    end = next((i for i in range(start + 1, len(words)) if lowered[i] in _AUXILIARIES), None)
    return words[start:end]


def _is_name_like(word: str, first: bool) -> bool:
    if word.lower() in _FUNCTION_WORDS:
        return False
    if any(character.isdigit() for character in word):
        return any(character.isalpha() for character in word)  # "COVID-19", "H1N1"
    letters = [character for character in word if character.isalpha()]
    if len(letters) >= 2 and sum(c.isupper() for c in letters) >= 2:
        return True  # "BERT", "MERS-CoV", "GPT"
    return not first and word[0].isupper()


def _with_topic(question: str, topic: str) -> tuple[str, str | None]:
    """The question with its pronouns replaced by the topic, and the first pronoun."""
    first = _PRONOUN.search(question)
    if first is None:
        return question, None

    def replace(match: re.Match[str]) -> str:
        return f"{topic}'s" if match.group(1).lower() in _POSSESSIVE else topic

    return _PRONOUN.sub(replace, question), first.group(1)


def aspect_of(question: str) -> str:
    """A follow-up's own content words, without the pronouns that stand for its topic."""
    words = _WORD.findall(question)
    return " ".join(
        w for w in words if not _PRONOUN.fullmatch(w) and w.lower() not in _FUNCTION_WORDS
    )


def _resolve_against(question: str, earlier: Resolved) -> Resolved:
    """The follow-up read as being about `earlier`."""
    rewritten, pronoun = _with_topic(question, earlier.topic)
    aspect = aspect_of(question)
    if pronoun is None:  # elliptic: keeps the earlier question's aspect
        return Resolved(
            f"{earlier.question}\n{question}", earlier.topic, earlier.question, aspect=aspect
        )
    return Resolved(rewritten, earlier.topic, earlier.question, pronoun, aspect=aspect)


def resolve_history(questions: Sequence[str]) -> list[Resolved]:
    """Each earlier user question resolved against the ones before it (by recency)."""
    resolved: list[Resolved] = []
    for question in questions:
        if resolved and looks_like_follow_up(question):
            resolved.append(_resolve_against(question, resolved[-1]))
        else:
            resolved.append(Resolved(question, topic_of(question)))
    return resolved


async def resolve_follow_up(
    question: str, earlier_questions: Sequence[str], retrieve: Retrieve
) -> Resolved:
    """The question to search and answer, given the user's earlier questions (oldest
    first); `retrieve` tries a candidate topic when two earlier topics are plausible."""
    if not earlier_questions or not looks_like_follow_up(question):
        return Resolved(question, topic_of(question))
    history = resolve_history(earlier_questions)
    candidates: list[Resolved] = []
    for earlier in reversed(history):
        if all(earlier.topic.lower() != c.topic.lower() for c in candidates):
            candidates.append(earlier)
        if len(candidates) == 2:
            break
    readings = [_resolve_against(question, candidate) for candidate in candidates]
    if len(readings) == 1 or readings[0].pronoun is None:
        return readings[0]  # one topic, or elliptic: the latest question carries it
    scores = [await _support(question, reading, retrieve) for reading in readings]
    best = max(range(len(readings)), key=lambda i: (scores[i], -i))  # ties: most recent
    tied = sum(1 for score in scores if score >= scores[best]) > 1
    chosen = readings[best]
    return Resolved(
        chosen.question, chosen.topic, chosen.referent, chosen.pronoun, tied, chosen.aspect
    )


async def _support(question: str, reading: Resolved, retrieve: Retrieve) -> float:
    """Share of the follow-up's own terms found in a retrieved passage that also holds the
    topic (the best passage's share)."""
    language = detect_language(question) or "en"
    own = _terms(aspect_of(question), language)
    topic = _terms(reading.topic, language)
    own -= topic
    if not own:
        return 0.0
    best = 0.0
    for document in await retrieve(reading.question):
        terms = _index_terms(document.page_content, language)
        if topic & terms:
            best = max(best, len(own & terms) / len(own))
    return best


def _terms(text: str, language: str) -> set[str]:
    """Index terms (the keyword engine's analyzers) of the text's content words."""
    words = [w for w in _WORD.findall(text) if w.lower() not in _FUNCTION_WORDS]
    return _index_terms(" ".join(words), language)


def _index_terms(text: str, language: str) -> set[str]:
    """Every term the keyword engine makes of the text read in `language` (stemmed, folded
    and as written), so the question's and a passage's terms compare like the index's."""
    return {term for _, terms in query_terms(text, [language]) for term in terms}
