#!/usr/bin/env bash
# Build both C extensions (spamcli/_speedups.c, spamcli/_fastlid.c) with AddressSanitizer and
# UndefinedBehaviorSanitizer, run the tests that exercise them (C against the Python reference and
# against the fasttext binding), then a CLI run over hostile input with that build, whose output must
# equal the pure-Python + fasttext-binding run; the normal builds are put back. Needs gcc. Exits
# non-zero on a sanitizer report (the process aborts) or a failed test (.ci/run runs it).
# Usage: scripts/sanitize_extensions.sh  (from the project root, in the dev venv)
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
include=$(python -c "import sysconfig; print(sysconfig.get_paths()['include'])")
modules=(_speedups _fastlid)
restore() {
    for m in "${modules[@]}"; do [ -f "$work/$m.so" ] && cp "$work/$m.so" "$(cat "$work/$m.path")"; done
    rm -rf "$work"
}
trap restore EXIT
for m in "${modules[@]}"; do
    so=$(python -c "import spamcli.$m as s; print(s.__file__)")
    echo "$so" > "$work/$m.path"
    cp "$so" "$work/$m.so"
    gcc -shared -fPIC -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined \
        -ffp-contract=off -I"$include" "spamcli/$m.c" -o "$so"
done
# PYTHONMALLOC=malloc: the extensions' PyMem buffers come from malloc, where ASan sees their bounds
# (pymalloc's pools would hide an overflow of a small buffer). That makes every Python allocation an
# ASan one (~2.5x the time); recording 5 frames of each (the default: 30) takes back a fifth of it.
sanitized=(env "LD_PRELOAD=$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
    ASAN_OPTIONS=detect_leaks=0:malloc_context_size=5 UBSAN_OPTIONS=print_stacktrace=1 PYTHONMALLOC=malloc)
# -s: a sanitizer report goes to stderr, which pytest's capture would swallow when the process dies
"${sanitized[@]}" python -m pytest -x -s -q -p no:cacheprovider tests/test_speedups.py tests/test_fast_paths.py \
    tests/test_text.py tests/test_fastlid.py tests/test_langid.py
python - "$work/hostile.txt" <<'PY'
import random, sys
rng = random.Random(5)
lines = [("x" * 10_000_000 + " http://a.ru").encode(), b"\xff\xfe not UTF-8", b"", "⟨".encode() * 5000,
         ("ÄÄÄÄ 😀 ไทยภาษา 中文字 १२३ ١٢٣ ＡＢＣ ﬁ İ Σ" * 3000).encode(), ("a@b.co " * 20000).encode(),
         ("<a href='http://x.y'>" * 5000).encode(), ("12.34,56 " * 50000).encode(),
         "__label__en </s> hello\x00world\x0b\x0c\r".encode()]
chars = 'ab"\\\t\u2028é⟨⟩😀\x00\x7f/ 0123&;<>@.:ไ中\u0301\u200b_l</s>'
lines += ["".join(rng.choice(chars) for _ in range(rng.randint(0, 200))).encode() for _ in range(3000)]
open(sys.argv[1], "wb").write(b"\n".join(lines) + b"\n")
PY
"${sanitized[@]}" python -m spamcli classify --jobs 1 --max-bytes 20000000 --format text "$work/hostile.txt" \
    > "$work/c.jsonl"
for m in "${modules[@]}"; do cp "$work/$m.so" "$(cat "$work/$m.path")"; done  # the reference: normal builds
SPAMCLI_PURE_PYTHON=1 SPAMCLI_FASTTEXT_LIB=1 python -m spamcli classify --jobs 1 --max-bytes 20000000 \
    --format text "$work/hostile.txt" > "$work/py.jsonl"
cmp "$work/c.jsonl" "$work/py.jsonl"
echo "sanitizers: clean; with both C extensions the output equals pure Python + the fasttext binding ($(wc -l < "$work/c.jsonl") lines)"
