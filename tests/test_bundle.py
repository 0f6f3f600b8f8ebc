"""The model bundle on disk: loading never runs code, saving is atomic, a round trip keeps scores."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_one_line_error, run_cli

from spamcli import SpamFilter, bundle
from spamcli.errors import EXIT_MODEL, ModelError
from spamcli.router import Thresholds

TEXTS = ["WIN a FREE iPhone now at http://x.example", "see you at lunch", "Geld verdienen von zu Hause"]
LANGS = ["en", "en", "de"]


def _scores(path: Path) -> list[float]:
    return [v.score for v in SpamFilter.load(path).score(TEXTS, LANGS)]


def _replace_model_file(model: Path, data: bytes) -> None:
    """Overwrite the first model file and update its sha256, as an attacker with write access could."""
    manifest_path = model / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    entry = next(iter(manifest["contexts"]["content"]["models"].values()))
    (model / entry["file"]).write_bytes(data)
    entry["sha256"] = hashlib.sha256(data).hexdigest()
    manifest_path.write_text(json.dumps(manifest))


class _Payload:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_load_bundle_reads_arrays_without_unpickling(trained_model, monkeypatch):
    """Arrays come from their checked .npy headers and bytes: nothing that could unpickle runs."""
    calls = []
    real_load = np.load

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling while loading a model")

    def spy(*args, **kwargs):
        calls.append(kwargs.get("allow_pickle"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(bundle.np, "load", spy)
    assert bundle.load_bundle(trained_model).contexts["content"].models
    assert all(flag is False for flag in calls)


def test_model_file_replaced_by_a_pickle_is_refused_without_running_it(model_copy, tmp_path):
    marker = tmp_path / "code-ran"
    _replace_model_file(model_copy, pickle.dumps(_Payload(marker)))
    with pytest.raises(ModelError) as info:
        bundle.load_bundle(model_copy)
    assert info.value.exit_code == EXIT_MODEL
    assert not marker.exists()
    result = run_cli("classify", "--model", model_copy, stdin="hello\n")
    assert_one_line_error(result, 4)
    assert not marker.exists()


def test_npz_holding_pickled_object_arrays_is_refused(model_copy, tmp_path):
    marker = tmp_path / "code-ran"
    buf = io.BytesIO()
    objects = np.array([_Payload(marker)], dtype=object)
    np.savez(buf, columns=objects, counts=objects, doc_counts=objects)
    _replace_model_file(model_copy, buf.getvalue())
    with pytest.raises(ModelError):
        bundle.load_bundle(model_copy)
    assert not marker.exists()


def test_manifest_naming_a_file_outside_the_model_dir_is_refused(model_copy):
    manifest = json.loads((model_copy / "manifest.json").read_text())
    entry = next(iter(manifest["contexts"]["content"]["models"].values()))
    entry["file"] = "../elsewhere.npz"
    (model_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="unsafe"):
        bundle.load_bundle(model_copy)


def test_save_and_load_round_trip_keeps_scores_and_thresholds(trained_model, tmp_path):
    loaded = bundle.load_bundle(trained_model)
    bundle.save_bundle(loaded, tmp_path / "copy")
    again = bundle.load_bundle(tmp_path / "copy")
    assert again.contexts["content"].thresholds == loaded.contexts["content"].thresholds
    assert sorted(again.contexts["content"].models) == sorted(loaded.contexts["content"].models)
    assert _scores(tmp_path / "copy") == _scores(trained_model)


def test_crash_while_saving_leaves_the_previous_model_loadable(model_copy, monkeypatch):
    before = _scores(model_copy)
    manifest_before = (model_copy / "manifest.json").read_bytes()
    changed = bundle.load_bundle(model_copy)
    ctx = changed.contexts["content"]
    ctx.thresholds = Thresholds(ham=0.01, spam=0.02)
    for model in ctx.models.values():
        model.counts = model.counts * 2 + 1  # new data files, new names
        model.invalidate()

    real_replace = os.replace

    def crash_on_manifest(src, dst):
        if Path(dst).name == "manifest.json":
            raise OSError("simulated crash while writing the manifest")
        return real_replace(src, dst)

    monkeypatch.setattr(bundle.os, "replace", crash_on_manifest)
    with pytest.raises(OSError, match="simulated crash"):
        bundle.save_bundle(changed, model_copy)
    monkeypatch.undo()

    assert (model_copy / "manifest.json").read_bytes() == manifest_before
    assert not list(model_copy.glob(".*.tmp"))
    assert _scores(model_copy) == before
    assert SpamFilter.load(model_copy).thresholds != Thresholds(ham=0.01, spam=0.02)


def test_default_model_dir_honours_spamcli_model_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SPAMCLI_MODEL", str(tmp_path))
    assert bundle.default_model_dir() == tmp_path


def test_deflated_and_fortran_order_npz_members_load_the_same_arrays(trained_model, model_copy):
    """save_bundle stores members uncompressed (read in place); a deflated .npz, or one with a
    column-major array, as other writers may make, loads the same numbers."""
    manifest = json.loads((model_copy / "manifest.json").read_text())
    entry = next(iter(manifest["contexts"]["content"]["models"].values()))
    with np.load(model_copy / entry["file"], allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    arrays["counts"] = np.asfortranarray(arrays["counts"])
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    _replace_model_file(model_copy, buf.getvalue())
    lang = next(iter(manifest["contexts"]["content"]["models"]))
    loaded = bundle.load_bundle(model_copy).contexts["content"].models[lang]
    original = bundle.load_bundle(trained_model).contexts["content"].models[lang]
    for name in ("columns", "counts", "doc_counts"):
        assert np.array_equal(getattr(loaded, name), getattr(original, name)), name
    assert _scores(model_copy) == _scores(trained_model)


@pytest.mark.parametrize("damage", ["zeros", "truncated"])
def test_a_corrupt_model_file_is_reported_as_such(model_copy, damage):
    """Its sha256 is checked while it is parsed: the error says it is corrupt, not what parsing found."""
    manifest = json.loads((model_copy / "manifest.json").read_text())
    files = [e["file"] for ctx in manifest["contexts"].values() for e in ctx["models"].values()]
    path = model_copy / files[-1]  # the last one read: the check of every other file came first
    data = path.read_bytes()
    path.write_bytes(bytes(len(data)) if damage == "zeros" else data[: len(data) // 2])
    with pytest.raises(ModelError, match="sha256 mismatch"):
        bundle.load_bundle(model_copy)


def test_saved_model_files_are_reproducible_and_read_in_place(trained_model, tmp_path):
    """save_bundle aligns each array's data in its file, so loading copies none, and writes the same
    model as the same bytes (so under the same content-addressed names), loaded and saved again too."""
    bundle.save_bundle(bundle.load_bundle(trained_model), tmp_path / "a")
    bundle.save_bundle(bundle.load_bundle(tmp_path / "a"), tmp_path / "b")
    names = sorted(path.name for path in (tmp_path / "a").glob("*.npz"))
    assert names and names == sorted(path.name for path in (tmp_path / "b").glob("*.npz"))
    assert names == sorted(path.name for path in trained_model.glob("*.npz"))  # as training wrote them
    for model in bundle.load_bundle(tmp_path / "a").contexts["content"].models.values():
        assert not model.columns.flags.owndata and model.columns.flags.aligned  # a view of the file
    assert _scores(tmp_path / "a") == _scores(trained_model)
