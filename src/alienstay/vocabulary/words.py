"""The alien vocabulary: basic words in facets, each with prompts and the persona behind it.

The packaged file is ``data/vocabulary.yaml``; a user's own file (``--vocabulary PATH``)
follows the same format. A malformed file stops with an error naming the file and the bad
key, so it can be fixed without reading this code.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import yaml

PACKAGED_VOCABULARY = "vocabulary.yaml"
PERSONA_IDS = frozenset(f"A{i}" for i in range(1, 8))  # the personas of docs/aliens.md; recipes use these too


class VocabularyError(ValueError):
    """The vocabulary file is malformed; the message names the file and the key."""


@dataclass(frozen=True)
class Word:
    facet: str
    tag: str
    definition: str
    prompts: tuple[str, ...]
    persona: tuple[str, ...]
    # The word names what is NOT there ("no water"). Only a tagger that declares it can see
    # absences may select it: an object classifier sees what is present, never what is missing.
    absence: bool = False


@dataclass(frozen=True)
class Facet:
    name: str
    description: str
    top_k: int
    min_prob: float
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Vocabulary:
    source: str  # the file it was read from
    facets: dict[str, Facet]  # in file order
    words: list[Word] = field(repr=False)

    @property
    def hash(self) -> str:
        """sha256 of the canonical content (not the file's bytes): comments and layout don't count."""
        canonical = json.dumps(
            {
                "facets": [asdict(f) for f in self.facets.values()],
                "words": [asdict(w) for w in self.words],
            },
            sort_keys=True,
            ensure_ascii=False,
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]

    @property
    def tags(self) -> list[str]:
        return [w.tag for w in self.words]

    @property
    def absence_tags(self) -> set[str]:
        """Words that name what is missing ("no water"); see `Word.absence`."""
        return {w.tag for w in self.words if w.absence}

    def facet_of(self, tag: str) -> str:
        return next(w.facet for w in self.words if w.tag == tag)

    def facet_slices(self) -> dict[str, slice]:
        """Where each facet's words sit in ``words`` (they are stored facet by facet)."""
        slices, start = {}, 0
        for name, facet in self.facets.items():
            slices[name] = slice(start, start + len(facet.tags))
            start += len(facet.tags)
        return slices


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML silently keeps the last of two equal keys; a vocabulary must not."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise VocabularyError(
                f"duplicate key '{key}' (line {key_node.start_mark.line + 1}): "
                "each facet and each tag may appear only once."
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def default_vocabulary_path() -> Path:
    return Path(str(resources.files("alienstay") / "data" / PACKAGED_VOCABULARY))


def load_vocabulary(path: Path | str | None = None) -> Vocabulary:
    """The packaged vocabulary, or a user's own file in the same format."""
    path = Path(path) if path is not None else default_vocabulary_path()
    if not path.is_file():
        raise VocabularyError(f"vocabulary file {path} does not exist: pass an existing YAML file.")
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except VocabularyError as error:
        raise VocabularyError(f"{path}: {error}") from None
    except yaml.YAMLError as error:
        raise VocabularyError(f"{path} is not valid YAML: {error}") from None
    return parse_vocabulary(document, source=str(path))


def parse_vocabulary(document: object, source: str = "<vocabulary>") -> Vocabulary:
    """Check every key of a parsed vocabulary document and build the typed vocabulary."""

    def bad(key: str, problem: str) -> VocabularyError:
        return VocabularyError(f"{source}: {key}: {problem}")

    if not isinstance(document, dict) or not isinstance(document.get("facets"), dict):
        raise bad("facets", "missing: the file needs `version: 1` and a `facets:` mapping.")
    if document.get("version") != 1:
        raise bad("version", f"is {document.get('version')!r}; only version 1 is understood.")
    if not document["facets"]:
        raise bad("facets", "is empty: define at least one facet with words.")

    facets: dict[str, Facet] = {}
    words: list[Word] = []
    seen_tags: dict[str, str] = {}
    for facet_name, spec in document["facets"].items():
        where = f"facets.{facet_name}"
        if not isinstance(spec, dict):
            raise bad(where, "must be a mapping with description, select and words.")
        top_k, min_prob = _select_rule(spec.get("select"), f"{where}.select", bad)
        entries = spec.get("words")
        if not isinstance(entries, dict) or not entries:
            raise bad(f"{where}.words", "missing or empty: a facet needs at least one word.")
        for tag, entry in entries.items():
            word_where = f"{where}.words.{tag}"
            if not isinstance(tag, str) or not tag.strip():
                raise bad(word_where, "a tag must be a non-empty string.")
            if tag in seen_tags:
                raise bad(word_where, f"duplicate tag: already defined in facet '{seen_tags[tag]}'.")
            seen_tags[tag] = facet_name
            words.append(_word(facet_name, tag, entry, word_where, bad))
        facets[facet_name] = Facet(
            name=facet_name,
            description=str(spec.get("description", "")),
            top_k=top_k,
            min_prob=min_prob,
            tags=tuple(entries),
        )
    return Vocabulary(source=source, facets=facets, words=words)


def _select_rule(rule: object, where: str, bad) -> tuple[int, float]:
    if not isinstance(rule, dict):
        raise bad(where, "missing: give `select: {top_k: 1, min_prob: 0.3}`.")
    unknown = set(rule) - {"top_k", "min_prob"}
    if unknown:
        raise bad(where, f"unknown keys {sorted(unknown)}; only top_k and min_prob are allowed.")
    top_k, min_prob = rule.get("top_k"), rule.get("min_prob")
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
        raise bad(f"{where}.top_k", f"is {top_k!r}; it must be an integer >= 1.")
    if not isinstance(min_prob, (int, float)) or isinstance(min_prob, bool) or not 0 <= min_prob <= 1:
        raise bad(f"{where}.min_prob", f"is {min_prob!r}; it must be a number between 0 and 1.")
    return top_k, float(min_prob)


def _word(facet: str, tag: str, entry: object, where: str, bad) -> Word:
    if not isinstance(entry, dict):
        raise bad(where, "must be a mapping with definition, prompts and persona.")
    definition = entry.get("definition")
    if not isinstance(definition, str) or not definition.strip():
        raise bad(f"{where}.definition", "missing: give a short definition in basic words.")
    prompts = entry.get("prompts")
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
        raise bad(f"{where}.prompts", "missing or empty: give 2-4 prompt phrasings (a list of strings).")
    persona = entry.get("persona", [])
    if not isinstance(persona, list) or not set(persona) <= PERSONA_IDS:
        raise bad(f"{where}.persona", f"is {persona!r}; use ids from {sorted(PERSONA_IDS)} (docs/aliens.md).")
    absence = entry.get("absence", False)
    if not isinstance(absence, bool):
        raise bad(f"{where}.absence", f"is {absence!r}; it must be true or false (true: the word names what is missing).")
    return Word(
        facet=facet, tag=tag, definition=definition, prompts=tuple(prompts), persona=tuple(persona), absence=absence
    )
