"""Output lines: the direct writer of scored records gives what a strict JSON encoder gives."""

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
        assert json_line(item) == _strict(item), item
    assert fast_path > 5_000  # the direct writer was exercised, not only the fallback


def _strict(item: dict) -> str:
    """The reference: json.dumps with non-finite numbers as null and JS line separators escaped."""
    finite = {
        k: (None if isinstance(v, float) and v != v or v in (float("inf"), float("-inf")) else v)
        for k, v in item.items()
    }
    line = json.dumps(finite, ensure_ascii=False, allow_nan=False)
    return line.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").replace("\u0085", "\\u0085")


def test_output_lines_are_strict_json_that_javascript_and_line_tools_can_read():
    for item in (
        {"id": 1, "score": float("nan"), "label": "ham", "lang": "en", "model": "multi"},
        {"id": "a\u2028b", "score": 0.5, "label": "ham", "lang": "en", "model": "multi"},
        {"id": 2, "error": "x\u2029y\u0085z", "extra": [float("inf")]},
    ):
        line = json_line(item)
        assert "NaN" not in line and "Infinity" not in line
        assert not {"\u2028", "\u2029", "\u0085"} & set(line)
        json.loads(line, parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name)))
    assert json.loads(json_line({"id": 2, "error": "x\u2029y", "extra": [float("inf")]})) == {
        "id": 2,
        "error": "x\u2029y",
        "extra": [None],
    }
