"""The user's documents as corpus passages: a folder of Markdown, HTML, reStructuredText and text files parsed
into titles and headed sections, cut into passages by heading or length, with ids from their paths."""

from embedft.corpus.documents import FolderReport, LengthOutliers, chunks_by_document, length_outliers, read_document_folder
from embedft.corpus.html_text import html_to_text, looks_like_html
from embedft.corpus.sections import Section, parse_sections, split_sections

__all__ = ["FolderReport", "LengthOutliers", "Section", "chunks_by_document", "html_to_text", "length_outliers",
           "looks_like_html", "parse_sections", "read_document_folder", "split_sections"]
