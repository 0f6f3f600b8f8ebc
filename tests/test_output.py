"""Output lines: the direct writer of scored records gives exactly what json.dumps gives."""

from __future__ import annotations

import json
import random

from spamcli.batch import json_line

CHARS = 'ab"\\\n\t\u2028é⟨😀\x00\x7f/ '


def test_json_line_equals_json_dumps_for_every_kind_of_item():
    rng = random.Random(3)

    def text() -> str:
        return "".join(rng.choice(CHARS) for _ in range(rng.randint(0, 6)))

    fast_path = 0
    for _ in range(20_000):
        rec_id = rng.choice([rng.randint(-(10**20), 10**20), text(), True, None, 1.5, rng.randint(0, 5)])
        score = rng.choice([rng.random(), round(rng.random(), 4), 0.0, 1.0, 1e-05, float("nan"), float("inf"), 1, -0.0])
        label = rng.choice(["spam", "ham", "unsure", text()])
        item = {"id": rec_id, "score": score, "label": label, "lang": text(), "model": rng.choice(["multi", text()])}
        if rng.random() < 0.1:
            item["learned"] = "spam"
        if rng.random() < 0.05:
            item = {"id": rec_id, "error": text()}
        fast_path += type(rec_id) in (int, str) and type(score) is float and len(item) == 5
        assert json_line(item) == json.dumps(item, ensure_ascii=False), item
    assert fast_path > 5_000  # the direct writer was exercised, not only the fallback
