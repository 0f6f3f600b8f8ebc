"""Start-up of ``echo hi | spamcli classify``, A/B: this tree against another checkout, interleaved.

    python benchmarks/startup.py --base ../spamcli-before          # 21 runs of each case
    python benchmarks/startup.py --base ../spamcli-before --runs 31 --stream 50000

Each case runs once per round for each tree in turn (alternating which goes first), so load from
other processes on the machine falls on both alike; the medians are compared. The trees are put on
``PYTHONPATH`` (each needs its C extensions built in place) and score with their own
``models/default``; the commands are the console script next to this Python (what users run) and
``python -m spamcli``, with and without ``--jobs 1``.
Outputs are compared too: a tree that answers differently is reported. ``--stream N`` adds the
throughput of N messages read from a file and from a pipe (``--jobs`` default), where a change to
start-up must not cost anything. Byte-code caching is left on (PYTHONDONTWRITEBYTECODE removed),
as for an installed tool. Output goes to a pipe that this script reads and discards.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CWD = tempfile.gettempdir()


def _env(tree: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "SPAMCLI_MODEL")}
    env["PYTHONPATH"] = str(tree)
    if (tree / "models" / "default" / "manifest.json").is_file():  # each tree with its own model
        env["SPAMCLI_MODEL"] = str(tree / "models" / "default")
    return env


def _timed(cmd: list[str], env: dict, stdin: bytes | None = None, stdin_file: Path | None = None):
    """(wall seconds, CPU seconds, stdout) of one run; an exit code other than 0 is an error. The
    CPU time (user + system, worker processes included) is less disturbed by other load than the
    wall time, which is what a user waits for."""
    handle = open(stdin_file, "rb") if stdin_file else None  # noqa: SIM115
    try:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        # cwd: not a checkout, whose spamcli `python -m` would import instead of PYTHONPATH's
        proc = subprocess.run(cmd, input=stdin, stdin=handle, capture_output=True, env=env, cwd=CWD, check=False)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        if handle:
            handle.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout


def _cases(stream: int, workdir: Path) -> dict:
    script = Path(sys.executable).parent / "spamcli"
    module = [sys.executable, "-m", "spamcli"]
    clis = {"script": [str(script)]} if script.exists() else {}
    clis["-m"] = module
    cases = {}
    for name, cli in clis.items():
        cases[f"echo hi | spamcli({name}) classify"] = ([*cli, "classify"], {"stdin": b"hi\n"})
        cases[f"echo hi | spamcli({name}) classify --jobs 1"] = ([*cli, "classify", "--jobs", "1"], {"stdin": b"hi\n"})
    if stream:
        sys.path.insert(0, str(ROOT))
        from spamcli.datasets import load

        texts = [r.text.replace("\n", " ") for r in load("sms_spam_collection")]
        lines = "".join(f"{texts[i % len(texts)]}\n" for i in range(stream)).encode("utf-8")
        path = workdir / "stream.txt"
        path.write_bytes(lines)
        cli = clis.get("script", module)
        cases[f"{stream} lines from a file"] = ([*cli, "classify", str(path)], {})
        cases[f"{stream} lines from a pipe"] = ([*cli, "classify"], {"stdin": lines})
        cases[f"{stream} lines from stdin, a file"] = ([*cli, "classify"], {"stdin_file": path})
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, required=True, help="the other checkout (e.g. a git worktree)")
    parser.add_argument("--new", type=Path, default=ROOT, help="this checkout (default)")
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--stream", type=int, default=0, help="also time N messages from a file and a pipe")
    parser.add_argument("--stream-runs", type=int, default=7)
    parser.add_argument("--only", default="", help="run only the cases whose name contains this")
    args = parser.parse_args()
    trees = {"base": args.base.resolve(), "new": args.new.resolve()}
    with tempfile.TemporaryDirectory() as tmp:
        cases = _cases(args.stream, Path(tmp))
        for name, (cmd, io) in cases.items():
            if args.only not in name:
                continue
            runs = args.stream_runs if "lines" in name else args.runs
            walls: dict[str, list[float]] = {label: [] for label in trees}
            cpus: dict[str, list[float]] = {label: [] for label in trees}
            outputs: dict[str, set[bytes]] = {label: set() for label in trees}
            for tree in trees.values():  # warm the byte-code caches and the page cache
                _timed(cmd, _env(tree), **io)
            for i in range(runs):
                order = list(trees.items()) if i % 2 == 0 else list(reversed(trees.items()))
                for label, tree in order:
                    wall, cpu, out = _timed(cmd, _env(tree), **io)
                    walls[label].append(wall)
                    cpus[label].append(cpu)
                    outputs[label].add(out)
            base, new = (statistics.median(walls[label]) for label in ("base", "new"))
            cpu_base, cpu_new = (statistics.median(cpus[label]) for label in ("base", "new"))
            same = "same output" if outputs["base"] == outputs["new"] else "OUTPUT DIFFERS"
            print(
                f"{name:45s} wall: base {base:.3f} s, new {new:.3f} s ({new / base - 1:+.1%});  CPU: base "
                f"{cpu_base:.3f} s, new {cpu_new:.3f} s ({cpu_new / cpu_base - 1:+.1%});  {runs} runs, {same}",
                flush=True,
            )


if __name__ == "__main__":
    main()
