"""``spamcli learn`` (sa-learn semantics, into the site layer) and ``spamcli info`` end to end."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from helpers import DEFAULT_MODEL, REPO, assert_one_line_error, cli_env, run_cli

from spamcli import SpamFilter
from spamcli.bundle import load_bundle
from spamcli.learning import learn_messages

MESSAGE = "Join our crypto trading group today, guaranteed profit every week"
PROBES = [MESSAGE, "crypto trading group", "Thanks for the notes from the meeting, see you on Monday."]


def _scores(model: Path, texts=PROBES) -> np.ndarray:
    return np.array([v.score for v in SpamFilter.load(model).score(list(texts), ["en"] * len(texts))])


def _learn(model: Path, action: str, *texts: str):
    return run_cli("learn", "--model", model, f"--{action}", "-", "--json", stdin="".join(t + "\n" for t in texts))


def test_learning_leaves_the_base_model_files_alone(model_copy):
    manifest = (model_copy / "manifest.json").read_bytes()
    files = sorted(p.name for p in model_copy.glob("*.npz"))
    assert _learn(model_copy, "spam", MESSAGE, "Another offer: cheap watches").code == 0
    assert (model_copy / "manifest.json").read_bytes() == manifest
    assert sorted(p.name for p in model_copy.glob("*.npz")) == files
    assert (model_copy / "site.sqlite").is_file()


def test_learn_spam_raises_the_score_and_learning_twice_does_nothing(model_copy):
    before = _scores(model_copy)
    first = _learn(model_copy, "spam", MESSAGE)
    assert first.code == 0, first.stderr
    assert json.loads(first.stdout)["learned"] == 1
    after = _scores(model_copy)
    assert after[0] > before[0]
    again = _learn(model_copy, "spam", "  join our CRYPTO trading group today,   guaranteed profit every week ")
    assert json.loads(again.stdout)["unchanged"] == 1  # the same normalised text: already known
    assert np.array_equal(_scores(model_copy), after)


def test_relearn_as_ham_moves_the_message_and_forget_restores_the_scores_bit_for_bit(model_copy):
    before = _scores(model_copy)
    assert _learn(model_copy, "spam", MESSAGE).code == 0
    moved = _learn(model_copy, "ham", MESSAGE)
    assert json.loads(moved.stdout)["moved"] == 1
    assert _scores(model_copy)[0] < before[0]
    forgotten = _learn(model_copy, "forget", MESSAGE)
    assert json.loads(forgotten.stdout)["forgotten"] == 1
    assert _scores(model_copy).tobytes() == before.tobytes()
    assert load_bundle(model_copy).context("content").site is None


def test_forget_of_many_messages_restores_every_score_bit_for_bit(model_copy):
    probes = [*PROBES, "free crypto signals join now", "see you at the meeting on Monday", "WIN a FREE iPhone"]
    before = _scores(model_copy, probes)
    names = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")
    taught = [f"crypto signals group {name}, join today for profit" for name in names]
    assert learn_messages(model_copy, taught[:4], "spam").learned == 4
    assert learn_messages(model_copy, [*taught[4:], "notes from the meeting"], "ham").learned == 5
    assert not np.array_equal(_scores(model_copy, probes), before)
    assert learn_messages(model_copy, [*taught, "notes from the meeting"], "forget").forgotten == 9
    assert _scores(model_copy, probes).tobytes() == before.tobytes()


def test_forget_of_a_message_never_learned_changes_nothing(model_copy):
    result = _learn(model_copy, "forget", "never seen before")
    assert result.code == 0
    assert json.loads(result.stdout)["not_learned"] == 1
    assert not (model_copy / "site.sqlite").exists()


def test_two_concurrent_learn_processes_lose_no_update(model_copy):
    words = ("red", "blue", "green", "gold", "silver", "black")
    batches = [[f"cheap {w} watches offer from shop {k}" for w in words] for k in ("alpha", "beta")]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "spamcli", "learn", "--model", str(model_copy), "--spam", "-"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=cli_env(),
            cwd=REPO,
        )
        for _ in batches
    ]
    # both read their whole input before writing; closing stdin together makes them write at once
    for proc, texts in zip(procs, batches):
        proc.stdin.write("".join(t + "\n" for t in texts).encode())
    for proc in procs:
        proc.stdin.close()
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
    ctx = load_bundle(model_copy).context("content")
    assert len(ctx.learned_labels) == 12 and set(ctx.learned_labels.values()) == {"spam"}
    assert ctx.site.n_messages == 12
    info = json.loads(run_cli("info", "--model", model_copy, "--json").stdout)
    assert info["learned_messages"] == 12
    assert info["contexts"]["content"]["learned"] == {"spam": 12, "ham": 0}


def test_learn_needs_a_model_and_exactly_one_action(model_copy):
    assert_one_line_error(run_cli("learn", "--spam", "-", stdin="x\n"), 2)
    assert_one_line_error(run_cli("learn", "--model", model_copy, "--spam", "--ham", "-", stdin="x\n"), 2)
    assert_one_line_error(run_cli("learn", "--model", model_copy, "--spam", "-", stdin=""), 3)


def test_learn_into_a_directory_that_does_not_exist_starts_from_the_shipped_model(tmp_path):
    site_dir = tmp_path / "site-model"
    for nothing in ("", "\n\n", '{"text": "broken\n'):  # nothing to learn: nothing is created either
        assert_one_line_error(run_cli("learn", "--model", site_dir, "--ham", "-", stdin=nothing), 3)
        assert not site_dir.exists()
    result = _learn(site_dir, "ham", "hello from our knitting forum")
    assert result.code == 0, result.stderr
    assert "copy of the shipped model" in result.stderr
    assert (site_dir / "manifest.json").read_bytes() == (DEFAULT_MODEL / "manifest.json").read_bytes()
    assert json.loads(run_cli("info", "--model", site_dir, "--json").stdout)["learned_messages"] == 1
    again = _learn(site_dir, "ham", "another message")
    assert "copy of the shipped model" not in again.stderr
    summary = run_cli("learn", "--model", site_dir, "--ham", "-", "--json", stdin="x y\n").stdout
    assert json.loads(summary)["created_from"] is None
    assert_one_line_error(_learn(tmp_path / "no" / "such" / "dir", "ham", "x"), 4)


def test_info_shows_contexts_languages_examples_thresholds_and_versions(trained_model):
    data = json.loads(run_cli("info", "--model", trained_model, "--json").stdout)
    assert data["format_version"] == 1 and data["spamcli_version"] and data["created"]
    content = data["contexts"]["content"]
    assert "multi" in content["models"]
    assert content["models"]["multi"]["examples"] == {"spam": 32, "ham": 32}
    assert set(content["thresholds"]) == {"ham", "spam"}
    table = run_cli("info", "--model", trained_model)
    assert table.code == 0
    for word in ("context content", "multi", "format version 1", "learned messages 0"):
        assert word in table.stdout


def test_info_on_a_missing_model_exits_4(tmp_path):
    assert_one_line_error(run_cli("info", "--model", tmp_path / "nope"), 4)


def test_a_learned_message_gets_the_moderators_label_until_it_is_forgotten(model_copy):
    texts = [MESSAGE, "  join our CRYPTO trading group today,   guaranteed profit every week", "crypto trading group"]
    assert _learn(model_copy, "spam", MESSAGE).code == 0
    verdicts = SpamFilter.load(model_copy).score(texts, ["en"] * len(texts))
    assert [v.learned for v in verdicts[:2]] == ["spam", "spam"]  # the same normalised text
    assert all(v.label == "spam" for v in verdicts[:2])
    assert verdicts[2].learned is None
    out = run_cli("classify", "--model", model_copy, stdin=MESSAGE + "\n")
    assert json.loads(out.stdout)["learned"] == "spam"
    assert _learn(model_copy, "forget", MESSAGE).code == 0
    assert all(v.learned is None for v in SpamFilter.load(model_copy).score(texts, ["en"] * 3))


def test_train_and_learn_import_and_save_without_fcntl(tmp_path, trained_model):
    """Windows has no fcntl: the lock (filelock) and temporary files must do without it."""
    import subprocess
    import sys

    from helpers import cli_env

    code = (
        "import builtins, sys\n"
        "real = builtins.__import__\n"
        "def no_fcntl(name, *a, **k):\n"
        "    if name == 'fcntl': raise ImportError('no fcntl here')\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = no_fcntl\n"
        "from spamcli import bundle, learning, training, tempfiles\n"
        "assert tempfiles.fcntl is None\n"
        "b = bundle.load_bundle(sys.argv[1]); bundle.save_bundle(b, sys.argv[2])\n"
        "print(learning.learn_messages(sys.argv[2], ['cheap watches here'], 'spam').learned)\n"
    )
    out = tmp_path / "copy"
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code, str(trained_model), str(out)],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"


BLOCKED = {
    "id": "b1",
    "about": "Trusted locksmith in Springfield: emergency lockouts, lock rekeying and safe opening, open all night",
    "personal_url": "https://locksmith.example",
    "comments_count": 0,
}
KEPT = {"id": "k1", "about": "Retired nurse from Leeds who loves gardening, birdwatching and long walks with my dogs"}
PROFILE_PROBES = [
    BLOCKED,
    {**BLOCKED, "id": "near", "about": BLOCKED["about"].replace("open all night", "best prices in town")},
    KEPT,
]


def _profile_run(model: Path, tmp_path: Path, *args: str, records=PROFILE_PROBES) -> list[dict]:
    path = tmp_path / "profiles.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    result = run_cli(*args, "--model", model, "--context", "profile", path)
    assert result.code == 0, result.stderr
    return result.json_lines()


def test_profiles_learn_block_and_keep_decisions_and_forget_restores_every_score(profile_model, tmp_path):
    model = Path(shutil.copytree(profile_model, tmp_path / "model"))
    before = _profile_run(model, tmp_path, "classify", "--jobs", "1")
    assert [item.get("learned") for item in before] == [None, None, None]

    assert _profile_run(model, tmp_path, "learn", "--spam", "--json", records=[BLOCKED])[0]["learned"] == 1
    assert _profile_run(model, tmp_path, "learn", "--ham", "--json", records=[KEPT])[0]["learned"] == 1
    after = _profile_run(model, tmp_path, "classify", "--jobs", "1")
    assert (after[0]["label"], after[0]["learned"]) == ("spam", "spam")  # the blocked bio: the moderators' label
    assert (after[2]["label"], after[2]["learned"]) == ("ham", "ham")
    assert "learned" not in after[1]  # a near-duplicate bio is not the taught one, but its score moves
    assert after[1]["score"] > before[1]["score"] + 0.05, (before[1], after[1])
    assert after[1]["text_score"] > before[1]["text_score"]

    for action, record in (("--forget", BLOCKED), ("--forget", KEPT)):
        assert _profile_run(model, tmp_path, "learn", action, "--json", records=[record])[0]["forgotten"] == 1
    assert _profile_run(model, tmp_path, "classify", "--jobs", "1") == before


def test_profiles_learn_from_an_account_moderation_export(profile_model, tmp_path):
    model = Path(shutil.copytree(profile_model, tmp_path / "model"))
    export = tmp_path / "accounts.csv"
    rows = [
        {**BLOCKED, "blocked": "true", "reviewed_at": "2026-11-02"},
        {**KEPT, "blocked": "false", "reviewed_at": "2026-11-03"},
        {"id": "u3", "about": "New here, hello from Porto and its many bridges over the river", "blocked": "false"},
    ]
    columns = ["id", "about", "personal_url", "comments_count", "blocked", "reviewed_at"]
    with export.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    args = ("learn", "--model", model, "--context", "profile", export, "--blocked-col", "blocked", "--json")
    result = run_cli(*args)
    assert result.code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["learned"], summary["moderation"]) == (2, {"spam": 1, "ham": 1, "skipped": 1})
    labels = {item["id"]: item.get("learned") for item in _profile_run(model, tmp_path, "classify", "--jobs", "1")}
    assert labels == {"b1": "spam", "near": None, "k1": "ham"}
    assert json.loads(run_cli(*args).stdout)["unchanged"] == 2  # the same decisions again: nothing new

    assert_one_line_error(run_cli(*args[:-1], "--spam"), 2)
    unreviewed = tmp_path / "unreviewed.csv"
    unreviewed.write_text("id,about,blocked\nu9,Hello from Porto and its many bridges over the river,false\n")
    assert_one_line_error(run_cli("learn", "--model", model, unreviewed, "--blocked-col", "blocked"), 3)


def test_one_call_teaching_a_message_twice_counts_it_once(model_copy):
    """A call's messages share transactions: the second copy sees the first as already learned."""
    report = learn_messages(model_copy, [MESSAGE, MESSAGE.replace(" ", "  "), PROBES[2]], "spam")
    assert (report.learned, report.unchanged, report.total_learned) == (2, 1, 2)
    assert load_bundle(model_copy).context("content").site.n_messages == 2


def test_an_account_export_calibrates_the_profile_context_and_forgetting_it_restores_every_score(
    profile_model, tmp_path
):
    """Block/keep decisions are a sample of the site's accounts, as a message export is of its
    messages: the profile context's gain and offset are fitted on them (empty bios not kept)."""
    model = Path(shutil.copytree(profile_model, tmp_path / "model"))
    before = _profile_run(model, tmp_path, "classify", "--jobs", "1")
    towns = ["Leeds", "Porto", "Lyon", "Graz", "Turku", "Cork", "Split"]
    hobbies = ["gardening", "chess", "birdwatching", "choir singing", "pottery", "cycling"]
    trades = ["locksmith", "roofer", "plumber", "carpet cleaner", "mover", "pest control"]
    rows = []
    for i in range(30):
        town, hobby, trade = towns[i % 7], hobbies[i // 7 % 6], trades[i % 6]
        rows.append(
            {"id": f"s{i}", "about": f"Best {trade} in {town}, call now for cheap {trade} deals", "blocked": "true"}
        )
        rows.append(
            {
                "id": f"h{i}",
                "about": f"Teacher from {town} who enjoys {hobby} and {trades[i // 5 % 6]} jokes",
                "blocked": "false",
                "reviewed_at": "2026-11-03",
            }
        )
    export = tmp_path / "accounts.csv"
    with export.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "about", "blocked", "reviewed_at"], restval="")
        writer.writeheader()
        writer.writerows(rows)
    result = run_cli("learn", "--model", model, "--context", "profile", export, "--blocked-col", "blocked", "--json")
    assert result.code == 0, result.stderr
    calibration = json.loads(result.stdout)["calibration"]
    assert (calibration["spam"], calibration["ham"]) == (30, 30)
    info = json.loads(run_cli("info", "--model", model, "--json").stdout)["contexts"]
    assert info["profile"]["site_calibration"] == {
        "gain": calibration["gain"],
        "offset": calibration["offset"],
        "regression_gain": calibration["regression_gain"],
    }
    assert "site_calibration" not in info["content"]
    assert _profile_run(model, tmp_path, "classify", "--jobs", "1") != before

    export.write_text("about\n" + "".join(f'"{r["about"]}"\n' for r in rows if r["about"]))
    forgot = run_cli("learn", "--model", model, "--context", "profile", "--forget", export, "--format", "csv", "--json")
    assert json.loads(forgot.stdout)["forgotten"] == 60, forgot.stderr
    assert _profile_run(model, tmp_path, "classify", "--jobs", "1") == before


def test_records_with_nothing_to_teach_are_counted_as_empty_not_unreadable(profile_model, tmp_path):
    """An account without a bio, a blank line: nothing to teach, and nothing wrong with the input."""
    model = Path(shutil.copytree(profile_model, tmp_path / "model"))
    export = tmp_path / "accounts.csv"
    export.write_text(
        "id,about,blocked,reviewed_at\n"
        f'b1,"{BLOCKED["about"]}",true,2026-11-02\n'
        "b2,,true,2026-11-02\n"  # a blocked account without a bio
        f'k1,"{KEPT["about"]}",false,2026-11-03\n'
    )
    result = run_cli("learn", "--model", model, "--context", "profile", export, "--blocked-col", "blocked", "--json")
    assert result.code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["learned"], summary["empty"], summary["unreadable"]) == (2, 1, 0)
    assert "empty 1 (nothing to teach)" in result.stderr
    no_bio = tmp_path / "no-bio.jsonl"  # accounts without the field at all, as classify reads them
    no_bio.write_text('{"id": "u1", "blocked": true}\n{"id": "u2", "about": null, "blocked": true}\n')
    result = run_cli("learn", "--model", model, "--context", "profile", no_bio, "--blocked-col", "blocked")
    assert_one_line_error(result, 3)
    assert "2 with no text, 0 unreadable" in result.stderr
    assert run_cli("info", "--model", model, "--json").code == 0

    lines = tmp_path / "spam.txt"
    lines.write_bytes(b"cheap pills at pills.example\n\n   \n\xff\xfe broken\n")
    result = run_cli("learn", "--model", model, "--spam", lines, "--json")
    assert result.code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["learned"], summary["empty"], summary["unreadable"]) == (1, 2, 1)


def test_evaluate_counts_and_warns_of_records_the_model_was_taught(profile_model, tmp_path):
    """Evaluated on what it was taught, a site model gets the moderators' labels back: say so."""
    model = Path(shutil.copytree(profile_model, tmp_path / "model"))
    labelled = tmp_path / "labelled.csv"
    labelled.write_text(
        "text,label\n"
        '"Win a free cruise today, call 0800 123 456 now to claim",spam\n'
        '"Lunch at the usual place on Thursday? Bring the slides",ham\n'
        '"Cheap watches and bags, free shipping, order at shop-deals.example",spam\n'
    )
    before = json.loads(run_cli("evaluate", "--model", model, labelled, "--json").stdout)
    assert before["learned_records"] == 0
    spam = tmp_path / "spam.txt"
    spam.write_text("Win a free cruise today, call 0800 123 456 now to claim\n")
    assert run_cli("learn", "--model", model, "--spam", spam).code == 0
    result = run_cli("evaluate", "--model", model, labelled, "--json")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["learned_records"] == 1
    assert "1 of these records were taught to this model" in " ".join(result.stderr.split())

    profiles = tmp_path / "labelled-accounts.jsonl"  # not _profile_run's file
    profiles.write_text(
        "".join(json.dumps({**r, "label": label}) + "\n" for r, label in ((BLOCKED, "spam"), (KEPT, "ham")))
    )
    assert _profile_run(model, tmp_path, "learn", "--spam", "--json", records=[BLOCKED])[0]["learned"] == 1
    result = run_cli("evaluate", "--model", model, "--context", "profile", profiles, "--json")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["learned_records"] == 1


def test_learn_says_when_it_counts_the_larger_class_as_fewer(model_copy, tmp_path):
    shops, perks = ["Lucky", "Golden", "Royal", "Mega", "Super", "Star"], ["spins", "bonus", "jackpot", "slots"]
    lines = [f"Join {shop} casino today for {perk} and more" for shop in shops for perk in perks]
    (tmp_path / "spam.txt").write_text("\n".join(lines) + "\n")
    result = run_cli("learn", "--model", model_copy, "--spam", tmp_path / "spam.txt")
    assert result.code == 0, result.stderr
    said = " ".join(result.stderr.split())
    assert "the site layer counts the 24 spam messages taught as 10 beside 0 genuine: teach genuine" in said
    result = run_cli("learn", "--model", model_copy, "--spam", tmp_path / "spam.txt", "--json")
    assert json.loads(result.stdout)["lesson_regression"]["class_weights"] == {"spam": 10 / 24, "ham": 1.0}
