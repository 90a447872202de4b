"""BM25 in the corpus's language: the `bm25` params choose the stop words and an optional Snowball stemmer, the
same for documents and queries, in evaluation and in hard-negative mining. The defaults are English stop words
without stemming (what BM25 always did)."""

from __future__ import annotations

import sys

import bm25s
import numpy as np
import pytest
import yaml

from embedft.config import Bm25Params, MineNegativesParams, load_params
from embedft.core import PipelineError
from embedft.mining.candidates import candidate_windows
from embedft.retrieval.bm25 import bm25_run, bm25_search, stemmer_for

GERMAN = ["Das Haus steht am See", "Der Garten hat viele Blumen", "Die Katze schläft im Bett", "Wir kaufen ein neues Auto"]
"""A toy German corpus: only the first document is about a house, in the singular."""
GERMAN_STEMMED = Bm25Params(language="de", stemmer=True)


def test_defaults_are_english_stop_words_without_a_stemmer() -> None:
    assert Bm25Params() == Bm25Params(language="en", stemmer=False) and stemmer_for(Bm25Params()) is None
    texts = ["the cat sat on the mat", "a dog and the houses", "houses for sale", "the the the"]
    queries = ["the houses", "house"]
    indices, scores = bm25_search(texts, queries, 4)
    # The same ranking as bm25s with its English stop words and no stemmer, the reading BM25 had before these params.
    reference = bm25s.BM25()
    reference.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    expected, expected_scores = reference.retrieve(bm25s.tokenize(queries, stopwords="en", show_progress=False), k=4,
                                                   show_progress=False, n_threads=1)
    assert indices[0, :2].tolist() == sorted(expected[0, :2].tolist()) == [1, 2]
    np.testing.assert_allclose(np.sort(scores[0])[::-1], np.sort(expected_scores[0])[::-1], rtol=1e-6)
    assert indices[1].tolist() == [-1, -1, -1, -1]  # no stemmer: 'house' is not 'houses'


def test_the_stemmer_finds_another_form_of_the_word() -> None:
    without = bm25_search(GERMAN, ["Häuser"], 4, Bm25Params(language="de"))[0]
    assert without[0].tolist() == [-1, -1, -1, -1]  # 'häuser' is not a word of the corpus
    stemmed = bm25_search(GERMAN, ["Häuser", "Katzen im Garten"], 4, GERMAN_STEMMED)[0]
    assert stemmed[0].tolist() == [0, -1, -1, -1]  # 'häuser' and 'haus' share the stem 'haus'
    assert sorted(stemmed[1][:2].tolist()) == [1, 2] and stemmed[1][2:].tolist() == [-1, -1]
    french = ["La maison est grande", "Les chevaux courent vite", "Un livre sur la table"]
    run = bm25_run(["maison", "chevaux", "livre"], french, ["q"], ["maisons et cheval"], 3, Bm25Params(language="fr", stemmer=True))
    assert set(run["q"]) == {"maison", "chevaux"}


def test_the_language_chooses_the_stop_words() -> None:
    texts = ["und der die das und der die", "Blumen im Garten", "the house on the hill"]
    query = ["und der die"]
    assert bm25_search(texts, query, 3)[0][0].tolist() == [0, -1, -1]  # English stop words keep German ones as words
    assert bm25_search(texts, query, 3, Bm25Params(language="de"))[0][0].tolist() == [-1, -1, -1]
    # 'none' keeps every word, English ones included
    assert bm25_search(texts, ["the house"], 3)[0][0].tolist() == [2, -1, -1]
    assert bm25_search(texts, ["the"], 3, Bm25Params(language="none"))[0][0].tolist() == [2, -1, -1]
    assert bm25_search(texts, ["the"], 3)[0][0].tolist() == [-1, -1, -1]


def test_mining_reads_text_in_the_corpus_language() -> None:
    vectors = np.eye(4, dtype=np.float32)
    anchor = np.array([[0.1, 0.2, 0.3, 0.4]], dtype=np.float32)
    settings = MineNegativesParams(range_min=0, range_max=4, retriever="bm25")
    english = candidate_windows(["Häuser"], anchor, vectors, GERMAN, settings, 4)["Häuser"]
    stemmed = candidate_windows(["Häuser"], anchor, vectors, GERMAN, settings, 4, lexical_settings=GERMAN_STEMMED)["Häuser"]
    assert english.rows.tolist() == [] and stemmed.rows.tolist() == [0]


def test_params_name_the_bad_language_or_stemmer(tmp_path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"bm25": {"language": "german"}}))
    with pytest.raises(PipelineError, match=r"bm25\.language"):
        load_params(path)
    path.write_text(yaml.safe_dump({"bm25": {"language": "zh", "stemmer": True}}))
    with pytest.raises(PipelineError, match=r"bm25.*stemmer: true needs a language with a Snowball stemmer .*de.*not 'zh'"):
        load_params(path)
    path.write_text(yaml.safe_dump({"bm25": {"language": "de", "stemmer": True}}))
    assert load_params(path).bm25.stemmer_algorithm == "german"


def test_a_missing_pystemmer_is_named(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "Stemmer", None)  # what `import Stemmer` meets without the package
    with pytest.raises(PipelineError, match="bm25.stemmer: true needs the PyStemmer package: pip install PyStemmer"):
        bm25_search(GERMAN, ["Häuser"], 2, GERMAN_STEMMED)
    assert bm25_search(GERMAN, ["Haus"], 2, Bm25Params(language="de"))[0][0].tolist() == [0, -1]  # no stemmer: not needed
