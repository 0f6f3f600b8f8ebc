#!/usr/bin/env bash
# Build spamcli/_fastlid.c with AddressSanitizer and UndefinedBehaviorSanitizer, run its tests and a CLI
# run over hostile input with that build, compare with the fasttext binding, then put the normal build
# back. Needs gcc. Usage: scripts/sanitize_fastlid.sh  (from the project root, in the dev venv)
set -euo pipefail
cd "$(dirname "$0")/.."
so=$(python -c "import spamcli._fastlid as s; print(s.__file__)")
work=$(mktemp -d)
trap 'cp "$work/orig.so" "$so"; rm -rf "$work"' EXIT
cp "$so" "$work/orig.so"
include=$(python -c "import sysconfig; print(sysconfig.get_paths()['include'])")
gcc -shared -fPIC -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined \
    -I"$include" spamcli/_fastlid.c -o "$so"
env "LD_PRELOAD=$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)" \
    ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 \
    python -m pytest -x -s -q -p no:cacheprovider tests/test_fastlid.py tests/test_langid.py "$@"
# the CLI over hostile input with the sanitized extension; then the same with the binding
python - "$work/hostile.txt" <<'PY'
import random, sys
rng = random.Random(5)
lines = [("x" * 1_000_000 + " http://a.ru").encode(), b"\xff\xfe not UTF-8", b"", "⟨".encode() * 5000,
         ("ÄÄÄÄ 😀 ไทยภาษา 中文字 १२३ ١٢٣ ＡＢＣ ﬁ İ Σ" * 3000).encode(), ("a@b.co " * 20000).encode(),
         "__label__en </s> hello\x00world\x0b\x0c\r".encode()]
chars = 'ab"\\\t\u2028é⟨⟩😀\x00\x7f/ 0123&;<>@.:ไ中\u0301\u200b_l</s>'
lines += ["".join(rng.choice(chars) for _ in range(rng.randint(0, 200))).encode() for _ in range(3000)]
open(sys.argv[1], "wb").write(b"\n".join(lines) + b"\n")
PY
env "LD_PRELOAD=$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)" \
    ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 \
    python -m spamcli classify --jobs 1 --max-bytes 20000000 --format text "$work/hostile.txt" > "$work/c.jsonl"
cp "$work/orig.so" "$so"
SPAMCLI_FASTTEXT_LIB=1 python -m spamcli classify --jobs 1 --max-bytes 20000000 --format text "$work/hostile.txt" \
    > "$work/binding.jsonl"
cmp "$work/c.jsonl" "$work/binding.jsonl"
wc -l < "$work/c.jsonl"
echo "sanitizers: clean; classify with _fastlid equals classify with the fasttext binding on hostile input"
