"""One page of a list, the one shape every list in Loafy returns (pages, API, staff area)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Page:
    """One page of a list: its rows, the total over all pages, and enough to draw the pager."""

    items: list
    total: int
    page: int
    per_page: int

    @property
    def pages(self):
        return max(1, -(-self.total // self.per_page))

    @property
    def has_prev(self):
        return self.page > 1

    @property
    def has_next(self):
        return self.page < self.pages


def clamp_page(page, total, per_page):
    """`page` moved into 1..the last page (an empty list has one, empty, page)."""
    return min(max(1, page), max(1, -(-total // per_page)))
