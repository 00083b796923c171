"""The alien vocabulary: the packaged file is complete and basic; malformed files fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from alienstay.vocabulary.words import (
    PERSONA_IDS,
    VocabularyError,
    default_vocabulary_path,
    load_vocabulary,
)

FACETS = ["place", "objects", "view", "light", "water", "style", "space", "shape", "comfort", "welcome", "count"]


def test_packaged_vocabulary_has_every_facet_in_order_with_basic_words():
    vocab = load_vocabulary()
    assert list(vocab.facets) == FACETS
    assert len(vocab.words) == sum(len(f.tags) for f in vocab.facets.values())
    for word in vocab.words:
        assert 2 <= len(word.prompts) <= 4, word.tag
        assert word.persona and set(word.persona) <= PERSONA_IDS, word.tag
        assert word.tag == word.tag.lower() and len(word.tag.split()) <= 2, word.tag
        assert word.definition
    for expected in ["bedroom", "sea view", "lamps on", "two beds", "rose petals", "towel animal", "for two"]:
        assert expected in vocab.tags
    assert vocab.facets["place"].top_k == 1 and vocab.facets["objects"].top_k > 1


def test_every_persona_hypothesis_has_words():
    vocab = load_vocabulary()
    used = {p for w in vocab.words for p in w.persona}
    assert used == PERSONA_IDS


def test_hash_is_stable_and_follows_content_not_layout(tmp_path: Path):
    vocab = load_vocabulary()
    assert vocab.hash == load_vocabulary().hash
    assert len(vocab.hash) == 16 and int(vocab.hash, 16) >= 0
    text = default_vocabulary_path().read_text(encoding="utf-8")
    relaid = tmp_path / "relaid.yaml"
    relaid.write_text("# a comment changes nothing\n" + yaml.safe_dump(yaml.safe_load(text), sort_keys=False), encoding="utf-8")
    assert load_vocabulary(relaid).hash == vocab.hash
    changed = tmp_path / "changed.yaml"
    changed.write_text(text.replace('"a photo of a hotel bedroom"', '"a photo of a bedroom"'), encoding="utf-8")
    assert load_vocabulary(changed).hash != vocab.hash


def write_vocabulary(tmp_path: Path, document: dict) -> Path:
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def small_document() -> dict:
    return {
        "version": 1,
        "facets": {
            "place": {
                "description": "where",
                "select": {"top_k": 1, "min_prob": 0.3},
                "words": {
                    "bedroom": {"definition": "a room to sleep", "prompts": ["a bedroom", "a hotel bedroom"], "persona": ["A5"]},
                    "lobby": {"definition": "a hall", "prompts": ["a lobby", "a hotel lobby"], "persona": ["A4"]},
                },
            },
            "light": {
                "description": "how lit",
                "select": {"top_k": 1, "min_prob": 0.5},
                "words": {"night": {"definition": "dark", "prompts": ["at night", "a night photo"], "persona": ["A1"]}},
            },
        },
    }


def test_a_users_own_small_vocabulary_loads(tmp_path: Path):
    vocab = load_vocabulary(write_vocabulary(tmp_path, small_document()))
    assert vocab.tags == ["bedroom", "lobby", "night"]
    assert vocab.facet_slices() == {"place": slice(0, 2), "light": slice(2, 3)}
    assert vocab.facets["light"].min_prob == 0.5


def test_missing_prompts_names_the_file_and_the_key(tmp_path: Path):
    document = small_document()
    del document["facets"]["place"]["words"]["lobby"]["prompts"]
    path = write_vocabulary(tmp_path, document)
    with pytest.raises(VocabularyError) as error:
        load_vocabulary(path)
    assert str(path) in str(error.value)
    assert "facets.place.words.lobby.prompts" in str(error.value)


def test_duplicate_tag_across_facets_is_refused(tmp_path: Path):
    document = small_document()
    document["facets"]["light"]["words"]["bedroom"] = {"definition": "x", "prompts": ["a", "b"], "persona": ["A1"]}
    with pytest.raises(VocabularyError, match=r"facets\.light\.words\.bedroom: duplicate tag.*'place'"):
        load_vocabulary(write_vocabulary(tmp_path, document))


def test_duplicate_key_in_the_yaml_is_refused_not_silently_dropped(tmp_path: Path):
    text = default_vocabulary_path().read_text(encoding="utf-8")
    bedroom_line = next(line for line in text.splitlines() if line.strip().startswith("bedroom:"))
    path = tmp_path / "twice.yaml"
    path.write_text(text.replace(bedroom_line, bedroom_line + "\n" + bedroom_line), encoding="utf-8")
    with pytest.raises(VocabularyError, match="duplicate key 'bedroom'") as error:
        load_vocabulary(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize(
    ("rule", "key"),
    [
        ({"top_k": 0, "min_prob": 0.3}, "facets.place.select.top_k"),
        ({"top_k": 1, "min_prob": 1.5}, "facets.place.select.min_prob"),
        ({"top_k": 1, "min_prob": 0.3, "floor": 2}, "facets.place.select"),
        (None, "facets.place.select"),
    ],
)
def test_bad_select_rule_names_the_key(tmp_path: Path, rule, key):
    document = small_document()
    document["facets"]["place"]["select"] = rule
    with pytest.raises(VocabularyError) as error:
        load_vocabulary(write_vocabulary(tmp_path, document))
    assert f"{key}:" in str(error.value)


def test_unknown_persona_and_missing_file_are_clear(tmp_path: Path):
    document = small_document()
    document["facets"]["light"]["words"]["night"]["persona"] = ["B9"]
    with pytest.raises(VocabularyError, match=r"facets\.light\.words\.night\.persona"):
        load_vocabulary(write_vocabulary(tmp_path, document))
    with pytest.raises(VocabularyError, match="does not exist"):
        load_vocabulary(tmp_path / "nope.yaml")
