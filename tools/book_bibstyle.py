"""The `authoryear` bibliography style: the references list labelled as the text cites.

The book cites in author-year form (`bibtex_reference_style: author_year` gives "Zhou et
al., 2017" in the text); pybtex's built-in styles label the list [1], [2], ... or [ZXS+17].
This Sphinx extension (`_config.yml`: `sphinx: local_extensions: {book_bibstyle: tools/}`)
registers a pybtex style, used as `:style: authoryear` in `book/references.md`, whose labels
are the same author-year text and whose list is sorted by author, then year:

    one author:  "Long, 2015"        two: "Simonyan and Zisserman, 2015"
    three or more: "Zhou et al., 2017"
"""
from __future__ import annotations

from pybtex.plugin import register_plugin
from pybtex.richtext import Text
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle


def _last_name(person) -> str:
    """A person's surname as plain text ("van Ginneken", "Arbeláez")."""
    latex = " ".join(person.prelast_names + person.last_names)
    return Text.from_latex(latex).render_as("text")


def author_year_label(entry) -> str:
    """The author-year label of one bibliography entry.

    Args:
        entry: a pybtex `Entry` with `author` (or `editor`) persons and a `year` field.
    Returns:
        e.g. "Zhou et al., 2017"; "Anonymous, n.d." without authors or year.
    """
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_last_name(p) for p in persons]
    if not names:
        who = "Anonymous"
    elif len(names) == 1:
        who = names[0]
    elif len(names) == 2:
        who = f"{names[0]} and {names[1]}"
    else:
        who = f"{names[0]} et al."
    return f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearLabelStyle(BaseLabelStyle):
    """pybtex label style: `author_year_label` for every entry."""

    def format_labels(self, sorted_entries):
        for entry in sorted_entries:
            yield author_year_label(entry)


class AuthorYearStyle(UnsrtStyle):
    """pybtex formatting style `authoryear`: unsrt's entries, author-year labels, sorted by
    author, year and title."""

    default_label_style = AuthorYearLabelStyle
    default_sorting_style = "author_year_title"


register_plugin("pybtex.style.formatting", "authoryear", AuthorYearStyle)


def setup(app):
    """Sphinx entry point: the style is registered when this module is imported."""
    return {"parallel_read_safe": True, "parallel_write_safe": True}
