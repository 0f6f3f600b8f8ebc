#!/usr/bin/env bash
# Build spamcli/_speedups.c with AddressSanitizer and UndefinedBehaviorSanitizer, run the tests that
# exercise it (C against the Python reference) and a CLI run over hostile input with that build, then
# put the normal build back. Needs gcc. Usage: scripts/sanitize_speedups.sh  (from the project root)
set -euo pipefail
cd "$(dirname "$0")/.."
so=$(python -c "import spamcli._speedups as s; print(s.__file__)")
work=$(mktemp -d)
trap 'cp "$work/orig.so" "$so"; rm -rf "$work"' EXIT
cp "$so" "$work/orig.so"
include=$(python -c "import sysconfig; print(sysconfig.get_paths()['include'])")
gcc -shared -fPIC -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined \
    -I"$include" spamcli/_speedups.c -o "$so"
sanitized=(env "LD_PRELOAD=$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
    ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1)
# -s: a sanitizer report goes to stderr, which pytest's capture would swallow when the process dies
"${sanitized[@]}" python -m pytest -x -s -q -p no:cacheprovider tests/test_speedups.py tests/test_fast_paths.py \
    tests/test_text.py
python - "$work/hostile.txt" <<'PY'
import random, sys
rng = random.Random(5)
lines = [("x" * 10_000_000 + " http://a.ru").encode(), b"\xff\xfe not UTF-8", b"", "⟨".encode() * 5000,
         ("ÄÄÄÄ 😀 ไทยภาษา 中文字 १२३ ١٢٣ ＡＢＣ ﬁ İ Σ" * 3000).encode(), ("a@b.co " * 20000).encode(),
         ("<a href='http://x.y'>" * 5000).encode(), ("12.34,56 " * 50000).encode()]
chars = 'ab"\\\t\u2028é⟨⟩😀\x00\x7f/ 0123&;<>@.:ไ中\u0301\u200b'
lines += ["".join(rng.choice(chars) for _ in range(rng.randint(0, 200))).encode() for _ in range(3000)]
open(sys.argv[1], "wb").write(b"\n".join(lines) + b"\n")
PY
"${sanitized[@]}" python -m spamcli classify --jobs 1 --max-bytes 20000000 --format text "$work/hostile.txt" \
    > "$work/c.jsonl"
cp "$work/orig.so" "$so"  # the reference run imports the extension too: the normal build
SPAMCLI_PURE_PYTHON=1 python -m spamcli classify --jobs 1 --max-bytes 20000000 --format text \
    "$work/hostile.txt" > "$work/py.jsonl"
cmp "$work/c.jsonl" "$work/py.jsonl"
echo "sanitizers: clean; C output equals the pure-Python output on hostile input"
