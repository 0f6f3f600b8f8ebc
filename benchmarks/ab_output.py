"""Outputs of two checkouts compared byte for byte on the benchmark inputs.

    python benchmarks/ab_output.py --base ../spamcli-before [--new .] [--messages 20000]

Inputs are built from the shared datasets: benchmarks/speed.py's streams (repeated and distinct
texts of its STREAM_SETS), benchmarks/quality.py's pooled test sets (text, lang, label), profiles
(bios of twitter_genuine_bios, decidim_profiles and arabic_twitter_accounts with account fields derived
from their position) and a small training file. Each checkout runs ``python -m spamcli`` with its
own ``.venv`` (else this Python), its own tree on ``PYTHONPATH`` and its own ``models/default``.
classify runs from a file and from stdin, with ``--jobs 1`` and ``2``, ``--explain``, ``--max-fpr``,
CSV ``--output`` and ``--context profile``; then evaluate, train (nb and nblr), export, and classify
with each tree's freshly trained model. Only time stamps ("exported", "created") are blanked.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROFILE_SETS = ("twitter_genuine_bios", "decidim_profiles", "arabic_twitter_accounts")
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from startup import _env as startup_env  # noqa: E402  (each checkout's code and model)

# JSON keys whose values are time stamps, blanked before comparing ("exported": "2026-12-07T04:25:46+00:00")
TIMES = re.compile(rb'"(exported|created)": "[^"]*"')


def build_inputs(work: Path, n: int) -> dict[str, Path]:
    from quality import build_split
    from speed import STREAM_SETS, labeled_records, stream_texts, write_jsonl

    from spamcli.datasets import datasets_root, load

    texts = stream_texts()
    files = {
        "repeated": write_jsonl(work / "repeated.jsonl", texts, n, distinct=False),
        "distinct": write_jsonl(work / "distinct.jsonl", texts, n, distinct=True),
    }
    files["lines"] = work / "lines.txt"
    files["lines"].write_text("".join(t.replace("\n", " ").replace("\r", " ") + "\n" for t in texts[:n]), "utf-8")
    split = build_split(datasets_root(None), quick=False)
    with (work / "quality.jsonl").open("w", encoding="utf-8") as out:
        for test in split.tests:
            for r in test.records:
                row = {"id": f"{test.name}:{r.id}", "text": r.text, "lang": r.lang, "label": r.label}
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
    files["quality"] = work / "quality.jsonl"
    with (work / "profiles.jsonl").open("w", encoding="utf-8") as out:
        bios = [r for name in PROFILE_SETS for r in load(name)]
        for i, r in enumerate(bios):
            row = {"id": f"u{i}", "name": f"user {i}", "about": r.text, "comments_count": i % 3, "label": r.label}
            row.update({"personal_url": "https://x.example/p" if i % 5 == 0 else "", "locale": "en"})
            row["email"] = f"u{i}@" + ("uni.edu" if i % 7 == 0 else "mail.example")
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    files["profiles"] = work / "profiles.jsonl"
    train = labeled_records(STREAM_SETS)[::4]
    with (work / "train.jsonl").open("w", encoding="utf-8") as out:
        for r in train:
            out.write(json.dumps({"text": r.text, "lang": r.lang, "label": r.label}, ensure_ascii=False) + "\n")
    files["train"] = work / "train.jsonl"
    return files


def cases() -> list[str]:
    """Command lines after ``spamcli``: {name} is an input file or (``{out}``) a per-tree directory,
    ``< {name}`` feeds it on stdin."""
    c = []
    for j in ("1", "2"):
        for name in ("repeated", "distinct", "quality"):
            c += [f"classify --jobs {j} {{{name}}}", f"classify --jobs {j} < {{{name}}}"]
        c += [f"classify --jobs {j} < {{lines}}", f"classify --explain --jobs {j} {{distinct}}"]
        c += [f"classify -c profile --jobs {j} {{profiles}}", f"classify -c profile --explain --jobs {j} {{profiles}}"]
    c += ["classify {quality}", "classify --max-fpr 0.01 {quality}", "classify --explain --top 3 {quality}"]
    c += ["classify -o {out}/quality.csv {quality}", "evaluate --json {quality}", "evaluate --errors 5 {quality}"]
    c += ["evaluate -c profile --json {profiles}", "export -o {out}/export.json"]
    c += ["export --with-counts -o {out}/export.json"]
    for kind in ("nb", "nblr"):
        c += [f"train --json --kind {kind} -o {{out}}/{kind} {{train}}", f"classify -m {{out}}/{kind} {{quality}}"]
        c += [f"export --with-counts -m {{out}}/{kind} -o {{out}}/export.json"]
    return c


def run(tree: Path, out: Path, case: str, files: dict[str, Path]) -> bytes:
    args = shlex.split(case.format(out=out, **files))
    stdin = os.devnull
    if args[-2:-1] == ["<"]:
        args, stdin = args[:-2], args[-1]
    python = tree / ".venv" / "bin" / "python"
    env = startup_env(tree)  # that tree's code and its own model
    cmd = [str(python) if python.exists() else sys.executable, "-m", "spamcli", *args]
    with open(stdin, "rb") as handle:
        proc = subprocess.run(cmd, stdin=handle, capture_output=True, env=env, cwd=out, check=False)
    result = b"exit %d\n" % proc.returncode + proc.stdout + b"\n--- stderr\n" + proc.stderr
    for written in sorted(p for p in out.iterdir() if p.is_file()):  # --output, export -o
        result += b"\n--- " + written.name.encode() + b"\n" + written.read_bytes()
        written.unlink()
    return TIMES.sub(rb'"\1": T', result.replace(str(out).encode(), b"OUT"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, required=True, help="the other checkout (with its C extensions built)")
    parser.add_argument("--new", type=Path, default=ROOT)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--only", default="", help="run only the cases whose name contains this")
    parser.add_argument("--keep", type=Path, help="write each output here as NAME.base / NAME.new")
    args = parser.parse_args()
    differ = 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        files = build_inputs(work, args.messages)
        outs = {label: work / label for label in ("base", "new")}
        for d in outs.values():
            d.mkdir()
        for name in cases():
            if args.only not in name:
                continue
            trees = {"base": args.base.resolve(), "new": args.new.resolve()}
            got = {label: run(tree, outs[label], name, files) for label, tree in trees.items()}
            same = got["base"] == got["new"]
            differ += not same
            lines = got["new"].count(b"\n")
            print(f"{'same   ' if same else 'DIFFERS'}  {name}  ({lines} lines)", flush=True)
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
                stem = re.sub(r"[^\w.-]+", "_", name)
                for label, data in got.items():
                    (args.keep / f"{stem}.{label}").write_bytes(data)
            if not same:
                a, b = (got[k].decode("utf-8", "replace").splitlines() for k in ("base", "new"))
                diff = list(difflib.unified_diff(a, b, "base", "new", n=0, lineterm=""))
                print("\n".join(line[:300] for line in diff[:12]), flush=True)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
