"""What a listing asks for: the filters, sort and page size of `GET /tasks` and of the export."""

from dataclasses import dataclass

SORTS = ("createdAt", "dueDate")
DEFAULT_LIMIT = 20
MAX_LIMIT = 100


@dataclass(frozen=True)
class ListQuery:
    status: str | None = None
    priority: str | None = None
    tag: str | None = None
    due_before: str | None = None  # sortable UTC instants (core.domain.clock)
    due_after: str | None = None
    sort: str = "createdAt"
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None

    @property
    def fingerprint(self) -> str:
        """What a cursor is bound to: everything that decides which tasks match, in which order."""
        parts = (self.status, self.priority, self.tag, self.due_before, self.due_after, self.sort)
        return "|".join("" if part is None else part for part in parts)
