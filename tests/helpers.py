"""Helpers for the tests: paths, a CLI runner (a real ``python -m spamcli`` subprocess), error checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "datasets" / "samples"
DEFAULT_MODEL = REPO / "models" / "default"


@dataclass
class Result:
    """What a finished ``spamcli`` process left behind."""

    code: int
    stdout: str
    stderr: str

    def json_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.stdout.splitlines()]


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for a spamcli subprocess: no debug tracebacks, no colour, wide terminal."""
    env = {k: v for k, v in os.environ.items() if k not in ("SPAMCLI_DEBUG", "SPAMCLI_MODEL")}
    env.update({"NO_COLOR": "1", "COLUMNS": "200", "PYTHONIOENCODING": "utf-8"})
    env.update(extra)
    return env


def run_cli(
    *args: str | os.PathLike, stdin: bytes | str = b"", env: dict | None = None, timeout: float = 120
) -> Result:
    """Run ``python -m spamcli ARGS`` with ``stdin`` and capture everything."""
    data = stdin.encode("utf-8") if isinstance(stdin, str) else stdin
    proc = subprocess.run(
        [sys.executable, "-m", "spamcli", *map(str, args)],
        input=data,
        capture_output=True,
        env=env or cli_env(),
        cwd=REPO,
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"))


def assert_one_line_error(result: Result, code: int) -> None:
    """The error contract: the exit code, one line on stderr, no traceback, nothing on stdout."""
    assert result.code == code, (result.code, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("spamcli: error: ")
    assert result.stdout == ""


def shared_datasets() -> Path | None:
    """``$SPAMCLI_DATASETS`` or ``../shared/datasets`` next to the repository, if present."""
    override = os.environ.get("SPAMCLI_DATASETS")
    candidates = [Path(override)] if override else []
    candidates.append(REPO.parent / "shared" / "datasets")
    for path in candidates:
        if path.is_dir():
            return path
    return None


def shared_dataset_texts(root: Path) -> list[str]:
    """Every text of the shared datasets present under ``root`` (registry order by name)."""
    from spamcli import datasets

    texts: list[str] = []
    for name, info in sorted(datasets.REGISTRY.items()):
        if all((root / info.folder / f).is_file() for f in info.files):
            texts += [r.text for r in datasets.load(name, root)]
    return texts
