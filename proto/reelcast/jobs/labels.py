"""User labels on a job (``JobSpec.labels``) and the selector that finds jobs by them
(``ListJobsRequest.label_selector``): their bounds, their check and the selector's grammar, in one place
for the server, the bridge and the CLI.

A key follows Kubernetes label keys, lower case only: 1 to 63 characters of ``a-z 0-9 . _ / -`` starting
with a letter. A value is 0 to 63 printable characters without ``,`` (the selector's separator) and without
a space at either end (the selector ignores spaces around a term's parts). A selector is comma-separated
``key=value`` terms that must all match (``team=video,env=prod``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from reelcast.jobs.violations import FieldViolation

MAX_LABELS = 16
MAX_LABEL_KEY_CHARS = 63
MAX_LABEL_VALUE_CHARS = 63
LABEL_KEY = re.compile(r"^[a-z][a-z0-9._/-]{0,62}$")
# The longest selector worth parsing: 16 terms at their longest, with separators and some spaces.
MAX_SELECTOR_CHARS = MAX_LABELS * (MAX_LABEL_KEY_CHARS + MAX_LABEL_VALUE_CHARS + 4)


class LabelSelectorError(ValueError):
    """A selector or a ``key=value`` term that does not follow the grammar; the message says why."""


def label_key_problem(key: str) -> str | None:
    """What is wrong with ``key`` as a label key; None if nothing."""
    if not LABEL_KEY.match(key):
        return (
            f"key {key[:MAX_LABEL_KEY_CHARS]!r} must be 1 to {MAX_LABEL_KEY_CHARS} characters of"
            " a-z 0-9 . _ / - starting with a letter"
        )
    return None


def label_value_problem(key: str, value: str) -> str | None:
    """What is wrong with ``value`` as the value of label ``key``; None if nothing."""
    if len(value) > MAX_LABEL_VALUE_CHARS:
        return f"value of {key!r} must be at most {MAX_LABEL_VALUE_CHARS} characters"
    if not value.isprintable() or "," in value:
        return f"value of {key!r} must be printable characters without ','"
    if value != value.strip():
        return f"value of {key!r} must not start or end with a space"
    return None


def validate_labels(labels: Mapping[str, str], path: str) -> list[FieldViolation]:
    """Every violation of ``labels`` against the bounds, each on ``path`` (empty when valid)."""
    if len(labels) > MAX_LABELS:
        return [FieldViolation(path, f"must have at most {MAX_LABELS} labels")]
    violations: list[FieldViolation] = []
    for key, value in sorted(labels.items()):
        problem = label_key_problem(key) or label_value_problem(key, value)
        if problem:
            violations.append(FieldViolation(path, problem))
    return violations


def parse_label_term(term: str) -> tuple[str, str]:
    """``key=value`` (spaces around each part ignored) as a checked pair; LabelSelectorError if not."""
    key, equals, value = term.partition("=")
    key, value = key.strip(), value.strip()
    if not equals:
        raise LabelSelectorError(f"term {term.strip()[:MAX_LABEL_KEY_CHARS]!r} must be key=value")
    problem = label_key_problem(key) or label_value_problem(key, value)
    if problem:
        raise LabelSelectorError(problem)
    return key, value


def parse_label_terms(terms: Iterable[str]) -> dict[str, str]:
    """Several ``key=value`` terms as labels; a key given twice or more than 16 terms is an error."""
    labels: dict[str, str] = {}
    for term in terms:
        key, value = parse_label_term(term)
        if key in labels:
            raise LabelSelectorError(f"key {key!r} is given more than once")
        labels[key] = value
        if len(labels) > MAX_LABELS:
            raise LabelSelectorError(f"must have at most {MAX_LABELS} terms")
    return labels


def parse_label_selector(selector: str) -> dict[str, str]:
    """The labels a job must all carry to match ``selector``; empty for an empty selector."""
    if len(selector) > MAX_SELECTOR_CHARS:
        raise LabelSelectorError(f"must be at most {MAX_SELECTOR_CHARS} characters")
    if not selector.strip():
        return {}
    return parse_label_terms(selector.split(","))


def format_label_selector(labels: Mapping[str, str]) -> str:
    """The canonical selector for ``labels``: sorted ``key=value`` terms, comma-separated."""
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def matches_labels(job_labels: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    """Whether a job's labels carry every wanted ``key=value``."""
    return all(job_labels.get(key) == value for key, value in wanted.items())
