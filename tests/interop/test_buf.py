"""buf in CI: the contract check that `make buf-breaking` runs is real. Against an unchanged copy of the
contract it passes; a copy with a renumbered or deleted field fails with buf's FILE rules."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUF = REPO / "node_modules" / ".bin" / "buf"
JOB_SERVICE = Path("proto/reelcast/jobs/v1/job_service.proto")


@pytest.fixture
def contracts(tmp_path: Path) -> tuple[Path, Path]:
    """Two copies of the module (buf.yaml and proto/): the baseline and one that a test edits."""
    assert BUF.exists(), "run `npm install` at the repo root (buf comes from @bufbuild/buf)"
    copies = []
    for name in ("before", "after"):
        copy = tmp_path / name
        copy.mkdir()
        shutil.copy(REPO / "buf.yaml", copy / "buf.yaml")
        shutil.copytree(REPO / "proto", copy / "proto", ignore=shutil.ignore_patterns("*.py", "*.pyi"))
        copies.append(copy)
    return copies[0], copies[1]


def buf_breaking(workspace: Path, against: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BUF), "breaking", str(workspace), "--against", str(against), "--error-format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def edit(path: Path, pattern: str, replacement: str) -> None:
    text = path.read_text()
    changed, count = re.subn(pattern, replacement, text, count=1, flags=re.MULTILINE)
    assert count == 1, f"{pattern!r} not found in {path}"
    path.write_text(changed)


def test_an_unchanged_contract_passes_buf_breaking(contracts: tuple[Path, Path]) -> None:
    before, after = contracts
    result = buf_breaking(after, before)
    assert result.returncode == 0, result.stdout + result.stderr


def test_renumbering_a_field_fails_buf_breaking(contracts: tuple[Path, Path]) -> None:
    before, after = contracts
    # WatchJobRequest.after_sequence = 2 -> 3: old clients' resume cursors would be silently dropped.
    edit(after / JOB_SERVICE, r"^(\s*int64 after_sequence = )2;", r"\g<1>3;")
    result = buf_breaking(after, before)
    assert result.returncode != 0
    assert "FIELD_SAME_NUMBER" in result.stdout or "FIELD_NO_DELETE" in result.stdout, result.stdout


def test_deleting_a_field_fails_buf_breaking(contracts: tuple[Path, Path]) -> None:
    before, after = contracts
    edit(after / JOB_SERVICE, r"^\s*string request_id = 2;\n", "")
    result = buf_breaking(after, before)
    assert result.returncode != 0
    assert "FIELD_NO_DELETE" in result.stdout, result.stdout


def test_adding_a_field_is_not_breaking(contracts: tuple[Path, Path]) -> None:
    before, after = contracts
    edit(
        after / JOB_SERVICE,
        r"^(\s*int64 after_sequence = 2;\n)",
        r"\g<1>  // A new optional filter.\n  string stage = 3;\n",
    )
    result = buf_breaking(after, before)
    assert result.returncode == 0, result.stdout + result.stderr
