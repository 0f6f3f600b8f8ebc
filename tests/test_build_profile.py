"""``scripts/build_profile_model.py --into``: the profile context of a model is replaced alone."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from helpers import REPO

from spamcli.bundle import load_bundle

sys.path.insert(0, str(REPO / "scripts"))
from build_profile_model import choose_thresholds, write_into  # noqa: E402


def test_write_into_replaces_the_profile_context_and_leaves_the_content_files_as_they_are(
    profile_model, trained_model, tmp_path
):
    model = Path(shutil.copytree(profile_model, tmp_path / "model"))
    before = {p.name: p.read_bytes() for p in model.glob("content-*.npz")}
    content = json.loads((model / "manifest.json").read_text())["contexts"]["content"]
    old_profile = {p.name for p in model.glob("profile-*.npz")}
    new_ctx = load_bundle(trained_model, with_site=False).contexts["content"]  # any other text model
    new_ctx.context = "profile"
    new_ctx.scoring = {"source": "default", "thresholds": {"ham": 0.3, "spam": 0.6}, "spam_at_fpr": {"0.01": 0.6}}
    write_into(model, new_ctx, {"some set": "CC0"})
    manifest = json.loads((model / "manifest.json").read_text())
    assert {p.name: p.read_bytes() for p in model.glob("content-*.npz")} == before
    assert manifest["contexts"]["content"] == content
    assert manifest["contexts"]["profile"]["scoring"]["spam_at_fpr"] == {"0.01": 0.6}
    assert manifest["training"]["profile_datasets"] == {"some set": "CC0"}
    named = {entry["file"] for entry in manifest["contexts"]["profile"]["models"].values()}
    assert {p.name for p in model.glob("profile-*.npz")} == named != old_profile  # the replaced files are gone


def test_the_budgets_cuts_come_from_the_proxy_ham_the_default_is_the_floor_and_the_ham_cut_from_the_spam():
    import numpy as np

    proxy_ham = np.arange(1000) / 1000  # out-of-fold scores 0.000 to 0.999: 1% of them at 0.99 or above
    chosen = choose_thresholds(proxy_ham, oof_spam=np.array([0.2] + [0.4] * 9))
    assert (chosen["spam_at_fpr"]["0.01"], chosen["spam_at_fpr"]["0.05"]) == (0.989, 0.949)
    assert chosen["spam_at_fpr"]["0.005"] == 0.99  # cuts stay within [0.5, 0.99]
    assert chosen["thresholds"] == {"ham": 0.4, "spam": 0.5}  # a fixed default; 10% of the spam below ham
    assert choose_thresholds(proxy_ham, oof_spam=np.array([0.9] * 10))["thresholds"]["ham"] == 0.5  # <= spam
