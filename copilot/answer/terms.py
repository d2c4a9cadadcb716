"""The words of a question and of a sentence that can match, per language.

Words are cut, lowercased and stemmed by tantivy's analyzers (the Snowball stemmers our
keyword engine uses), so "vaccines" meets "vaccination" and "Geschäftsjahre" meets
"Geschäftsjahr". Stop words are tantivy's own lists too (Lucene's for English, Snowball's for
twelve more languages), with the few words that shape a question ("what", "how", "explain").

A stop list is still needed beside the IDF weights the answerer gives terms: those weights
are counted over the dozen retrieved chunks only, where "what" or "how" occur in no sentence
and would weigh as much as the rarest name in the question. Measured on COVID-QA (bench
answer, seed 7, 3 sentences): these lists 0.62 gold contained; stopwords-iso's English list,
which drops content words such as "cases", "work" and "home", 0.58; no list, IDF only, 0.59.
"""

from __future__ import annotations

from functools import lru_cache

import tantivy

from copilot.search.language import STEMMED_LANGUAGES

DEFAULT_LANGUAGE = "en"

# ISO 639-1 code -> the name of tantivy's Snowball stemmer for it: the keyword engines'
# stemmed languages, and those tantivy can stem without a stop word list.
_STEMMERS = {
    **STEMMED_LANGUAGES,
    "ar": "arabic",
    "el": "greek",
    "nb": "norwegian",
    "nn": "norwegian",
    "ro": "romanian",
    "ta": "tamil",
    "tr": "turkish",
}

# ISO 639-1 code -> the name of tantivy's built-in stop word list for it (the keyword
# engines' stemmed languages have one; so do the Norwegian written forms).
_STOP_LISTS = {code: name for code, name in _STEMMERS.items() if name in STEMMED_LANGUAGES.values()}

# Words that shape a question or say how to answer it rather than what about, where the
# language's stop list keeps them.
_QUESTION_WORDS = {
    "en": "what which who whom whose when where why how do does did can could would should may"
    " might must i me my we our you your describe explain list tell detail details know",
    "de": "wann warum weshalb wieso",
}


@lru_cache(maxsize=64)
def _analyzer(language: str) -> tantivy.TextAnalyzer:
    builder = (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(40))
        .filter(tantivy.Filter.lowercase())
    )
    if language in _STOP_LISTS:
        builder = builder.filter(tantivy.Filter.stopword(_STOP_LISTS[language]))
    if language in _QUESTION_WORDS:
        builder = builder.filter(tantivy.Filter.custom_stopword(_QUESTION_WORDS[language].split()))
    if language in _STEMMERS:
        builder = builder.filter(tantivy.Filter.stemmer(_STEMMERS[language]))
    return builder.build()


def language_of(code: str | None) -> str:
    """The language to analyse a text in: its detected code, English when unknown."""
    return (code or DEFAULT_LANGUAGE).lower().split("-")[0]


def content_terms(text: str, language: str | None = None) -> list[str]:
    """Stemmed, lowercased words of a text without stop words, in order."""
    return list(_analyzer(language_of(language)).analyze(text))
