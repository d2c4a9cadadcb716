"""The adversarial suite: one test (or more) per security finding, each written to fail on
the code before its fix. Every test makes its own documents, so none skips without ../shared.
"""
