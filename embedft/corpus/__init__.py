"""The user's documents as corpus passages: a folder of Markdown (and MDX), HTML, reStructuredText and text files
parsed into titles and headed sections, markup removed, cut into passages by heading or length within a word cap
and the model's token window, with ids from their paths."""

from embedft.corpus.documents import FolderReport, LengthOutliers, chunks_by_document, length_outliers, read_document_folder
from embedft.corpus.html_text import html_to_text, looks_like_html
from embedft.corpus.markdown_text import clean_markdown, markup_counts
from embedft.corpus.passage_size import PassageLimit
from embedft.corpus.sections import Section, parse_sections, split_sections

__all__ = ["FolderReport", "LengthOutliers", "PassageLimit", "Section", "chunks_by_document", "clean_markdown", "html_to_text",
           "length_outliers", "looks_like_html", "markup_counts", "parse_sections", "read_document_folder", "split_sections"]
