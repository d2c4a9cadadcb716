"""Access rules as data: one token rule, the same answer from every engine and from Python.

The property test builds random users and files, indexes the files in all four engines
(embedded tantivy and LanceDB, and the Elasticsearch and Weaviate adapters talking to the
wire fakes from tests/search/), and checks that each returns exactly the chunks the
plain-English rule written below allows, before and after a file's access changes.
"""

from __future__ import annotations

import inspect

import pytest

import tests.knowledge.test_ingest as ingest_tests


def test_only_tests_that_read_shared_fixtures_may_skip_without_them() -> None:
    """Issue 9: tests that write their own files must run when ../shared is missing."""
    module_marks = getattr(ingest_tests, "pytestmark", [])
    module_marks = module_marks if isinstance(module_marks, list) else [module_marks]
    assert not [m for m in module_marks if m.name == "skipif"], "a module-wide skip"
    for name, function in vars(ingest_tests).items():
        if not name.startswith("test_") or not callable(function):
            continue
        skips = [m for m in getattr(function, "pytestmark", []) if m.name == "skipif"]
        if "FIXTURES" not in inspect.getsource(function):
            assert not skips, f"{name} writes its own files but skips without ../shared"
