"""The fast paths give exactly what the specification gives.

- :func:`spamcli.text.normalise` skips passes that cannot match: its output equals running every
  pass in order, as documented in docs/FORMAT.md (known outputs, written by hand).
- :class:`spamcli.text.Vectoriser` (per-token and per-message caches) yields the same columns and
  values as hashing :func:`spamcli.text.features` one by one.
- The numpy scorer of ``kind="nblr"`` equals scikit-learn's ``LogisticRegression.decision_function``
  over the same two views.
- The compact bundle (uint32 counts, per-model lookup tables) scores exactly as before.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import scipy.sparse as sp
from helpers import SAMPLES

from spamcli import text as T
from spamcli.bundle import load_bundle, save_bundle
from spamcli.model import NaiveBayesModel
from spamcli.text import FeatureSettings, SparseRows, Vectoriser, features, hash_feature

FRAGMENTS = [
    "WIN a FREE iPhone!!!",
    "Claim now at http://win.example/claim?id=12",
    "www.Cheap-Pills.example/buy",
    "visit spam.xyz today",
    "mail me: Bob.Smith+x@Mail.Example.com",
    "call +44 (0) 7911 123-456",
    "I paid 1,250.50 for 3 tickets",
    "Freeeeeee money $$$ €€€",
    "SEND YOUR BANK DETAILS TO CLAIM THE PRIZE NOW",
    "这是一个测试 免费领取 iPhone15",
    "ขอบคุณครับ โปรโมชั่นพิเศษ 50%",
    "こんにちは、カタカナとひらがな",
    "안녕하세요 무료 쿠폰",
    "Привет, заработок без вложений",
    "مرحبا بك في العرض الخاص",
    "नमस्ते, मुफ्त ऑफर",
    "😀😀 🎉 ☎ ⭐ so nice",
    '<p>Great <a href="http://spam.example/p">click here</a> <b>now</b></p>',
    "&lt;b&gt;escaped&lt;/b&gt; &amp; &#64; entities",
    "zero\u200bwidth\u00adsoft\ufeffhyphen",
    "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３ ﬁ ligature",
    "Are we still meeting for lunch tomorrow at 12?",
    "ok",
    "lol.. :) see u l8r",
    "tel:0612345678 or 06 12 34 56 78",
    "aaa\nbbb\n\nccc\t\tddd",
    "x" * 30,
    "",
    " ",
    "...",
    "١٢٣ ٤٥٦٧٨٩٠ arabic digits",
]


def _texts() -> list[str]:
    rng = random.Random(5)
    out = list(FRAGMENTS)
    for _ in range(400):
        out.append(" ".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 4))))
    for name in ("spam.txt", "ham.txt"):
        out.extend((SAMPLES / name).read_text(encoding="utf-8").splitlines())
    return out


TEXTS = _texts()


# What every pass of docs/FORMAT.md section 2, in order and without a shortcut, makes of each
# fragment, and of texts where one pass makes or hides what another pass looks for (an entity
# that unescapes to "<" or "@", full-width forms that NFKC turns into digits or tags, an invisible
# character inside a host, capitals decided on the first 500 characters, numbers replaced before
# repeats are squeezed). Written by hand from the specification, one pass at a time.
NORMALISED = {
    "WIN a FREE iPhone!!!": "win a free iphone!!",  # 8 of 14 letters upper: not shouting
    "Claim now at http://win.example/claim?id=12": "claim now at ⟨url⟩ ⟨dom:win.example⟩",
    "www.Cheap-Pills.example/buy": "⟨url⟩ ⟨dom:cheap-pills.example⟩",
    "visit spam.xyz today": "visit ⟨url⟩ ⟨dom:spam.xyz⟩ today",
    "mail me: Bob.Smith+x@Mail.Example.com": "mail me: ⟨email⟩ ⟨dom:mail.example.com⟩",
    "call +44 (0) 7911 123-456": "call ⟨phone⟩",
    "I paid 1,250.50 for 3 tickets": "i paid ⟨num5⟩ for ⟨num1⟩ tickets",
    "Freeeeeee money $$$ €€€": "free money $$ €€",
    "SEND YOUR BANK DETAILS TO CLAIM THE PRIZE NOW": "send your bank details to claim the prize now ⟨caps⟩",
    "这是一个测试 免费领取 iPhone15": "这是一个测试 免费领取 iphone ⟨num2⟩",
    "ขอบคุณครับ โปรโมชั่นพิเศษ 50%": "ขอบคุณครับ โปรโมชั่นพิเศษ ⟨num2⟩ %",
    "こんにちは、カタカナとひらがな": "こんにちは、カタカナとひらがな",
    "안녕하세요 무료 쿠폰": "안녕하세요 무료 쿠폰",
    "Привет, заработок без вложений": "привет, заработок без вложений",
    "مرحبا بك في العرض الخاص": "مرحبا بك في العرض الخاص",
    "नमस्ते, मुफ्त ऑफर": "नमस्ते, मुफ्त ऑफर",
    "😀😀 🎉 ☎ ⭐ so nice": "⟨emoji⟩ ⟨emoji⟩ ⟨emoji⟩ ⟨emoji⟩ ⟨emoji⟩ so nice",
    '<p>Great <a href="http://spam.example/p">click here</a> <b>now</b></p>': (
        "great ⟨url⟩ ⟨dom:spam.example⟩ click here now"
    ),
    "&lt;b&gt;escaped&lt;/b&gt; &amp; &#64; entities": "escaped & @ entities",
    "zero\u200bwidth\u00adsoft\ufeffhyphen": "zerowidthsofthyphen",
    "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３ ﬁ ligature": "fullwidth abc ⟨num3⟩ fi ligature",
    "Are we still meeting for lunch tomorrow at 12?": "are we still meeting for lunch tomorrow at ⟨num2⟩ ?",
    "ok": "ok",
    "lol.. :) see u l8r": "lol.. :) see u l ⟨num1⟩ r",
    "tel:0612345678 or 06 12 34 56 78": "tel: ⟨phone⟩ or ⟨phone⟩",
    "aaa\nbbb\n\nccc\t\tddd": "aa bb cc dd",
    "x" * 30: "xx",
    "": "",
    " ": "",
    "...": "..",
    "١٢٣ ٤٥٦٧٨٩٠ arabic digits": "⟨phone⟩ arabic digits",  # Arabic-Indic digits are digits
    "&#60;a href=&quot;http://x.example&quot;&#62;go&lt;/a&gt; now": "⟨url⟩ ⟨dom:x.example⟩ go now",
    "WRITE TO ME AT BOB&#64;MAIL.EXAMPLE NOW!!!!": "write to me at ⟨email⟩ ⟨dom:mail.example⟩ now!! ⟨caps⟩",
    "call 0612345678 😀😀😀": "call ⟨phone⟩ ⟨emoji⟩ ⟨emoji⟩ ⟨emoji⟩",
    "ｃａｌｌ ０６１２３４５６７８": "call ⟨phone⟩",
    "＜b＞bold＜/b＞": "bold",
    "www.spam\u200b.example": "⟨url⟩ ⟨dom:spam.example⟩",
    "CHEAP PILLS AT WWW.PILLS.EXAMPLE": "cheap pills at ⟨url⟩ ⟨dom:pills.example⟩ ⟨caps⟩",
    "wiiiin 10000 $$$$": "wiin ⟨num5⟩ $$",
    "hello " * 100 + "SHOUTING " * 20: ("hello " * 100 + "shouting " * 20).strip(),
    "SHOUTING " * 60 + "hello " * 100: ("shouting " * 60 + "hello " * 100).strip() + " ⟨caps⟩",
}


@pytest.mark.parametrize("normalise", [T.normalise, T._normalise_py], ids=["normalise", "pure-python"])
def test_normalise_with_shortcuts_gives_what_every_pass_in_order_gives(normalise):
    assert set(FRAGMENTS) <= set(NORMALISED)
    for text, expected in NORMALISED.items():
        assert normalise(text) == expected, text


@pytest.mark.parametrize(
    "settings",
    [
        FeatureSettings(),
        FeatureSettings(char_ngrams=None),
        FeatureSettings(binary=False, n_features=2**12),
        FeatureSettings(word_ngrams=1, char_ngrams=(3, 5), n_features=2**16, binary=False),
    ],
)
def test_vectoriser_columns_equal_hashing_the_feature_strings(settings):
    vec = Vectoriser(settings)
    for _ in range(2):  # second round: answered from the caches
        for text in TEXTS:
            expected: dict[int, float] = {}
            for feat in features(text, settings):
                col = hash_feature(feat, settings.n_features)
                expected[col] = 1.0 if settings.binary else expected.get(col, 0.0) + 1.0
            assert vec.row(text) == expected, text


def test_vectoriser_transform_rows_equal_row_by_row_and_survive_cache_resets():
    vec = Vectoriser(FeatureSettings())
    vec._ROW_CACHE_LIMIT = 7  # force the bounded caches to empty themselves during the run
    vec._CACHE_LIMIT = 50
    rows = vec.transform(TEXTS)
    fresh = Vectoriser(FeatureSettings())
    for i, text in enumerate(TEXTS):
        lo, hi = rows.indptr[i], rows.indptr[i + 1]
        assert dict(zip(rows.indices[lo:hi].tolist(), rows.data[lo:hi].tolist())) == fresh.row(text)
    assert len(vec._row_cache) <= 7


def _views(X: sp.csr_matrix, model: NaiveBayesModel) -> sp.csr_matrix:
    """The two views of NaiveBayesModel's regression: x and x*r, each divided by its L2 norm with
    the model's floor (docs/FORMAT.md), built here with scipy independently of the numpy scorer."""

    def floored(matrix: sp.csr_matrix, floor: float) -> sp.csr_matrix:
        norms = np.sqrt(np.maximum(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel(), floor))
        return sp.csr_matrix(sp.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ matrix)

    sub = X[:, model.columns]
    weighted = sub.multiply(model.sparse_weights()).tocsr()
    return sp.hstack([floored(sub, model.floor_plain), floored(weighted, model.floor_nb)]).tocsr()


def test_numpy_nblr_decision_equals_sklearn_logistic_regression_on_the_two_views():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(11)
    n_features = 2048
    y = np.array([0, 1] * 150)
    X = sp.random(300, n_features, density=0.02, format="lil", random_state=rng, dtype=np.float64)
    X[np.flatnonzero(y == 1), :40] = 1.0  # some signal
    X = X.tocsr()
    X.data[:] = 1.0
    model = NaiveBayesModel.fit(X, y, kind="nblr", C=10.0)
    assert model.kind == "nblr"

    # scikit-learn's own decision_function with the model's weights (liblinear's fit is not
    # reproducible without a seed, so the weights are the model's, the arithmetic is sklearn's)
    lr = LogisticRegression().fit(_views(X, model), y)
    k = len(model.columns)

    X_test = sp.random(80, n_features, density=0.03, format="csr", random_state=rng, dtype=np.float64)
    X_test.data[:] = 1.0
    # Columns never seen in training have no regression weight but count in the norms ||x|| and
    # ||x*r|| of the numpy scorer (docs/FORMAT.md); sklearn's views hold seen columns only, so the
    # comparison is over seen columns (as in training, where every column is seen).
    seen = np.zeros(n_features)
    seen[model.columns] = 1.0
    X_test = sp.csr_matrix(X_test.multiply(seen))
    X_test.eliminate_zeros()
    ours = model.decision_function(SparseRows(X_test.indptr, X_test.indices, X_test.data, n_features))
    lr.coef_ = np.concatenate([model.coef_plain, model.coef_nb])[None, :]
    lr.intercept_ = np.array([model.intercept])
    np.testing.assert_allclose(ours, lr.decision_function(_views(X_test, model)), rtol=0, atol=1e-9)
    assert k < n_features


def test_bundle_stores_whole_counts_compactly_and_scores_the_same(trained_model, tmp_path):
    bundle = load_bundle(trained_model)
    ctx = bundle.context("content")
    before = [v.score for v in ctx.score(TEXTS[:200])]
    for model in ctx.models.values():
        model.counts = model.counts + 0.25  # not whole numbers: must stay float64
        model.invalidate()
    expected = [v.score for v in ctx.score(TEXTS[:200])]
    saved = load_bundle(save_bundle(bundle, tmp_path / "again"))
    again = saved.context("content")
    assert [v.score for v in again.score(TEXTS[:200])] == expected
    for name, model in again.models.items():
        np.testing.assert_array_equal(model.counts, ctx.models[name].counts)
    assert before != expected  # the fractional counts did change the scores


def test_workers_are_forked_on_linux_but_not_on_macos_or_where_fork_is_missing(monkeypatch):
    import multiprocessing

    from spamcli import stream

    monkeypatch.setattr(stream, "usable_cpus", lambda: 8)
    assert stream.available_jobs(3) == 3
    assert stream.available_jobs(0) == stream.MAX_DEFAULT_JOBS
    monkeypatch.setattr(stream.sys, "platform", "darwin")  # fork is there, but unsafe with macOS's libraries
    assert stream.available_jobs(3) == 1 and stream.available_jobs(0) == 1
    monkeypatch.setattr(stream.sys, "platform", "win32")
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    assert stream.available_jobs(3) == 1
