"""``spamcli classify --context profile`` end to end: signals, the short-bio guard, trust lists,
cron-style batch output, and signal weights learned from labeled profiles."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from helpers import SAMPLES, assert_one_line_error, run_cli

PROFILES = SAMPLES / "profiles.csv"


def _by_id(result) -> dict[str, dict]:
    assert result.code == 0, result.stderr
    return {item["id"]: item for item in result.json_lines()}


def test_profile_classify_keeps_one_line_per_record_in_order_with_signals(profile_model):
    result = run_cli("classify", "--model", profile_model, "--context", "profile", PROFILES)
    items = result.json_lines()
    assert [i["id"] for i in items] == ["u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8"]
    assert all(isinstance(i["signals"], list) for i in items)
    assert items[0]["nickname"] == "pooja_escorts"  # other fields pass through
    assert items[0]["model"].startswith("profile/")
    assert result.stderr == ""


def test_spam_bios_with_links_are_flagged(profile_model):
    items = _by_id(run_cli("classify", "--model", profile_model, "--context", "profile", PROFILES))
    for spammer in ("u1", "u8"):
        assert items[spammer]["label"] == "spam", items[spammer]
        assert "url_in_bio" in items[spammer]["signals"]
        assert "personal_url" in items[spammer]["signals"]
    assert "contact_in_bio" in items["u8"]["signals"]
    assert "bio_without_activity" in items["u1"]["signals"]


def test_short_or_empty_genuine_bios_are_ham(profile_model):
    items = _by_id(run_cli("classify", "--model", profile_model, "--context", "profile", PROFILES))
    for genuine in ("u3", "u4", "u5"):  # "Product manager", "", "Telecommunication Engineer - Developer"
        assert items[genuine]["label"] == "ham", items[genuine]
        assert "short_bio" in items[genuine]["signals"]
    assert items["u4"]["text_score"] is None  # an empty bio is not scored as text
    assert items["u7"]["label"] == "ham" and "verified" in items["u7"]["signals"]


def test_short_bio_guard_holds_even_when_every_weight_says_spam(profile_model, tmp_path):
    """A text model that dominated by spam (here: a bias of +20) still cannot flag a short bio
    without link signals; short bios with a link are not protected."""
    scoring = tmp_path / "scoring.json"
    scoring.write_text(json.dumps({"bias": 20.0, "empty_bio_logit": 5.0}))
    profiles = tmp_path / "p.jsonl"
    rows = [
        {"id": 1, "about": "Product manager"},
        {"id": 2, "about": ""},
        {"id": 3},
        {"id": 4, "about": "Nurse.", "comments_count": 0, "locale": "fr"},
        {"id": 5, "about": "Nurse.", "personal_url": "https://x.example"},
    ]
    profiles.write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = _by_id(
        run_cli("classify", "--model", profile_model, "--context", "profile", "--scoring", scoring, profiles)
    )
    for key in (1, 2, 3, 4):
        assert items[key]["label"] == "ham", items[key]
    assert items[5]["label"] == "spam"


def test_trusted_domains_and_ids_are_ham_with_the_reason(profile_model, tmp_path):
    domains, ids = tmp_path / "domains.txt", tmp_path / "ids.txt"
    domains.write_text("# our partners\n.edu\n^fast-loans\\.example$\n")
    ids.write_text("u1\n")
    items = _by_id(
        run_cli(
            "classify",
            "--model",
            profile_model,
            "--context",
            "profile",
            "--trusted-domains",
            domains,
            "--trusted-ids",
            ids,
            PROFILES,
        )
    )
    assert items["u1"]["label"] == "ham" and items["u1"]["reason"] == "trusted id u1"
    assert items["u6"]["label"] == "ham" and ".edu" in items["u6"]["reason"]
    assert items["u8"]["label"] == "ham" and "fast-loans" in items["u8"]["reason"]
    assert "reason" not in items["u2"]


def test_cron_batch_writes_only_spam_and_unsure_to_csv_and_a_summary_on_stderr(profile_model, tmp_path):
    out = tmp_path / "flagged.csv"
    result = run_cli(
        "classify", "--model", profile_model, "--context", "profile", PROFILES, "--output", out, "--only", "spam,unsure"
    )
    assert result.code == 0, result.stderr
    assert result.stdout == ""
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and all(r["label"] in ("spam", "unsure") for r in rows)
    assert {"u1", "u8"} <= {r["id"] for r in rows}
    assert rows[0]["signals"].count(";") >= 1 and "email" in rows[0]
    summary = result.stderr.strip().splitlines()[-1]
    assert summary.startswith("8 records: ") and f"written to {out}" in summary
    assert not list(tmp_path.glob(".flagged.csv.*"))  # the temporary file was renamed


def test_output_that_is_not_csv_is_json_lines_and_progress_goes_to_stderr(profile_model, tmp_path):
    out = tmp_path / "all.jsonl"
    result = run_cli("classify", "--model", profile_model, "--context", "profile", PROFILES, "-o", out, "--progress")
    assert result.code == 0, result.stderr
    assert len(out.read_text().splitlines()) == 8
    assert "8 records" in result.stderr


def test_only_with_an_unknown_label_is_a_usage_error(profile_model):
    result = run_cli("classify", "--model", profile_model, "--context", "profile", PROFILES, "--only", "spam,maybe")
    assert_one_line_error(result, 2)


def test_content_only_model_scores_profiles_with_its_content_context(trained_model):
    items = _by_id(run_cli("classify", "--model", trained_model, "--context", "profile", PROFILES))
    assert all(i["model"] is None or i["model"].startswith("content/") for i in items.values())
    assert items["u4"]["label"] == "ham"


def test_trust_lists_need_the_profile_context(trained_model, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("1\n")
    assert_one_line_error(run_cli("classify", "--model", trained_model, "--trusted-ids", ids, stdin="hi\n"), 2)


def test_labeled_profiles_with_account_fields_learn_signal_weights(trained_model, tmp_path):
    spam_bios = (SAMPLES / "spam.txt").read_text().splitlines() + [
        line.split(";", 1)[1] for line in (SAMPLES / "decidim.txt").read_text().splitlines()
    ]
    ham_bios = (SAMPLES / "genuine_bios.txt").read_text().splitlines()[:40]
    path = tmp_path / "labeled_profiles.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "about", "personal_url", "comments_count", "label"])
        for i, bio in enumerate(spam_bios):
            writer.writerow([f"s{i}", bio, "https://spam.example" if i % 2 else "", 0, "spam"])
        for i, bio in enumerate(ham_bios):
            writer.writerow([f"h{i}", bio, "https://me.example" if i % 7 == 0 else "", i % 5, "ham"])
    out = Path(shutil.copytree(trained_model, tmp_path / "model"))
    result = run_cli("train", path, "--context", "profile", "--out", out, "--min-per-class", "5")
    assert result.code == 0, result.stderr
    scoring = json.loads((out / "manifest.json").read_text())["contexts"]["profile"]["scoring"]
    assert scoring["source"] == "learned"
    assert scoring["weights"]["personal_url"] > 0
    assert scoring["weights"]["verified"] == -3.0  # never seen in training: keeps its default
    info = json.loads(run_cli("info", "--model", out, "--json").stdout)
    assert info["contexts"]["profile"]["scoring"] == "learned"


def test_profile_explain_lists_signal_weights_and_bio_words_that_add_up_to_the_score():
    import json as _json
    import math

    from helpers import run_cli

    record = {
        "id": 1,
        "about": "Best casino bonus codes, visit www.casino-bonus.example and win big today",
        "personal_url": "http://x.example",
        "comments_count": 0,
    }
    result = run_cli("classify", "--context", "profile", "--explain", "--top", "3", stdin=_json.dumps(record) + "\n")
    assert result.code == 0, result.stderr
    item = _json.loads(result.stdout)
    assert set(item["signal_weights"]) == set(item["signals"]) - {"short_bio"}
    assert len(item["reasons"]) == 3 and all({"token", "weight"} == set(r) for r in item["reasons"])
    z = item["bias"] + item["text_weight"] + sum(item["signal_weights"].values())
    assert abs(1 / (1 + math.exp(-z)) - item["score"]) < 1e-3  # the explanation is the score's own sum
    plain = _json.loads(run_cli("classify", "--context", "profile", stdin=_json.dumps(record) + "\n").stdout)
    assert "reasons" not in plain and plain["score"] == item["score"]


def test_profiles_score_in_worker_processes_with_the_same_output(tmp_path):
    import json as _json

    from helpers import run_cli

    from spamcli import parallel
    from spamcli.bundle import load_bundle
    from spamcli.profiles import ProfileScorer
    from spamcli.records import Record

    kinds = [("I like hiking and open data", ""), ("Cheap pills at www.pills.example buy now", "http://x.example")]
    rows = [
        {"id": i, "about": about, "personal_url": url, "comments_count": i % 2, "name": f"n{i}"}
        for i, (about, url) in enumerate(kinds * 150)
    ]
    path = tmp_path / "users.jsonl"
    path.write_text("".join(_json.dumps(r) + "\n" for r in rows))
    outputs = [run_cli("classify", path, "--context", "profile", "--jobs", j, "--explain").stdout for j in ("1", "2")]
    assert outputs[0] == outputs[1] and len(outputs[0].splitlines()) == 300
    scorer = ProfileScorer(load_bundle(None))
    records = [Record(id=r["id"], text=r["about"], fields=r) for r in rows]
    in_workers = [item for batch in scorer.classify_batches(records, jobs=2, max_batch=64) for item in batch]
    assert parallel._worker_scorer is None  # the parent's: set in the workers only, by their initializer
    assert in_workers == scorer.score_records(records)
