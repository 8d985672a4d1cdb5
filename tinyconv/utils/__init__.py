"""``tinyconv.utils``: tools for looking at a model (``summary``)."""

from tinyconv.utils.summary import Summary, summary

__all__ = ["Summary", "summary"]
