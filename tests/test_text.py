"""Normalisation, tokenisation and hashing: the feature contract shared with the export format."""

from __future__ import annotations

import pytest

from spamcli.text import FeatureSettings, Vectoriser, features, hash_feature, normalise, tokenise


@pytest.mark.parametrize(
    ("raw", "markers"),
    [
        ("Visit http://www.Spam.example/x?y=1 now", ["⟨url⟩", "⟨dom:spam.example⟩"]),
        ("go to www.cheap.example today", ["⟨url⟩", "⟨dom:cheap.example⟩"]),
        ("write to bob@Mail.example", ["⟨email⟩", "⟨dom:mail.example⟩"]),
        ("call +44 7911 123456 now", ["⟨phone⟩"]),
        ("I paid 250 for 3 tickets", ["⟨num3⟩", "⟨num1⟩"]),
        ("so nice 😀", ["⟨emoji⟩"]),
    ],
)
def test_normalise_turns_urls_emails_phones_numbers_emoji_into_markers(raw, markers):
    tokens = tokenise(normalise(raw))
    for marker in markers:
        assert marker in tokens
    assert not any(ch.isdigit() for t in tokens if not t.startswith("⟨") for ch in t)


def test_normalise_keeps_html_link_targets_as_url_markers_and_drops_tags():
    out = normalise('<p>Great <a href="http://spam.example/p">click here</a> <b>now</b></p>')
    assert out == "great ⟨url⟩ ⟨dom:spam.example⟩ click here now"


def test_normalise_collapses_repeated_characters_and_lowercases():
    assert normalise("Freeeeeee money!!!!!!") == "free money!!"
    assert normalise("freeeeeee money!!!!!!") == normalise("FReee Money!!!")


def test_normalise_unifies_compatibility_forms_and_drops_invisible_characters():
    assert normalise("ｆｒｅｅ mo\u200bney") == "free money"


@pytest.mark.parametrize("raw", ["免费领取", "ฟรีเงินด่วน"])
def test_scripts_without_spaces_become_character_bigrams(raw):
    tokens = tokenise(normalise(raw))
    assert len(tokens) == len(raw) - 1
    assert all(len(t) == 2 for t in tokens)
    assert "".join(t[0] for t in tokens) + tokens[-1][1] == raw


def test_mixed_chinese_and_latin_keeps_latin_words():
    assert tokenise(normalise("免费领取 iPhone")) == ["免费", "费领", "领取", "iphone"]


def test_features_are_word_unigrams_and_bigrams_by_default():
    settings = FeatureSettings(n_features=2**10, word_ngrams=2, char_ngrams=None)
    assert features("Free money now", settings) == ["w:free", "w:money", "w:now", "b:free money", "b:money now"]


def test_char_ngram_features_skip_markers():
    settings = FeatureSettings(n_features=2**10, word_ngrams=1, char_ngrams=(2, 3))
    feats = features("hey http://x.example", settings)
    assert "c: h" in feats and "c:ey " in feats
    assert not any("⟨" in f for f in feats if f.startswith("c:"))


# CRC-32 of each feature's UTF-8 bytes as GNU gzip computes it (the CRC in its trailer:
# printf '%s' "$feature" | gzip -c | tail -c8 | head -c4 | od -An -tu4), and the columns modulo
# 2^10, 2^18 and 2^20 by shell arithmetic. gzip gives 0xCBF43926 for "123456789", the catalogued
# check value of CRC-32 (IEEE 802.3).
HASHED_FEATURES = {
    "123456789": (0xCBF43926, 294, 14630, 276774),
    "w:free": (538845737, 553, 139817, 926249),
    "b:free money": (1073845334, 86, 103510, 103510),
    "w:免费": (2063435589, 837, 100165, 886597),
    "w:⟨url⟩": (265525349, 101, 235621, 235621),
}


@pytest.mark.parametrize("feature", list(HASHED_FEATURES))
def test_hash_feature_is_crc32_of_utf8_modulo_n_features(feature):
    crc, *columns = HASHED_FEATURES[feature]
    assert hash_feature(feature, 2**32) == crc
    assert [hash_feature(feature, n) for n in (2**10, 2**18, 2**20)] == columns


def test_vectoriser_rows_hash_exactly_the_feature_strings():
    settings = FeatureSettings(n_features=2**12, char_ngrams=(2, 4), binary=True)
    row = Vectoriser(settings).row("free free money")
    expected = {hash_feature(f, settings.n_features) for f in features("free free money", settings)}
    assert set(row) == expected
    assert set(row.values()) == {1.0}
    counted = Vectoriser(FeatureSettings(n_features=2**12, char_ngrams=None, binary=False)).row("free free money")
    assert counted[hash_feature("w:free", 2**12)] == 2.0
