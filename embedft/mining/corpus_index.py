"""The corpus as mining sees it: rows by document id, texts built on demand, and digests for finding copies."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from embedft.core import Document, normalise_query


class DocumentTexts(Sequence[str]):
    """Each document's title + text, built when asked for, so a large corpus is not held twice in memory."""

    def __init__(self, documents: list[Document]):
        self._documents = documents

    def __len__(self) -> int:
        return len(self._documents)

    def __getitem__(self, row):
        if isinstance(row, slice):
            return [document.full_text for document in self._documents[row]]
        return self._documents[row].full_text


def text_key(text: str) -> bytes:
    """A 16-byte digest of the normalised text: equal for copies, and far smaller than the text as a dict key."""
    return hashlib.blake2b(normalise_query(text).encode("utf-8"), digest_size=16).digest()


class CorpusIndex:
    """Corpus rows by document id, and each row's text digests (computed when first needed) for finding copies."""

    def __init__(self, corpus: dict[str, Document]):
        self.corpus = corpus
        self.ids = list(corpus)
        self._documents = list(corpus.values())
        self.texts = DocumentTexts(self._documents)
        self.row_of = {doc_id: row for row, doc_id in enumerate(self.ids)}
        self._keys: dict[int, frozenset[bytes]] = {}

    def keys_of(self, row: int) -> frozenset[bytes]:
        """Digests of a row's title + text and of its text alone."""
        if row not in self._keys:
            document = self._documents[row]
            self._keys[row] = frozenset({text_key(document.full_text), text_key(document.text)})
        return self._keys[row]

    def rows_of(self, doc_ids: Iterable[str]) -> set[int]:
        """Rows of the given ids (ids not in the corpus, such as '', are skipped)."""
        return {self.row_of[doc_id] for doc_id in doc_ids if doc_id in self.row_of}

    def copies_among(self, candidates: Iterable[int], texts: Iterable[str] = (), rows: Iterable[int] = ()) -> set[int]:
        """Those ``candidates`` whose title + text, or text alone, equals one of ``texts`` or a text of one of ``rows``.

        Only candidates are looked at, so the cost follows the rank windows, not the corpus size.
        """
        wanted = {text_key(text) for text in texts}.union(*(self.keys_of(row) for row in rows))
        return {int(row) for row in candidates if self.keys_of(int(row)) & wanted}
