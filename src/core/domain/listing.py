"""What a listing asks for: the filters, sort and page size of `GET /tasks` and of the export.

The filters are the field table's (`core.domain.models.LIST_FILTERS`), keyed by query parameter, each value
already in the form its attribute is stored in (a date as a sortable UTC instant).
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from core.domain.models import LIST_FILTERS

SORTS = ("createdAt", "dueDate")
DEFAULT_LIMIT = 20
MAX_LIMIT = 100

# The cursor fingerprint is a compatibility surface: a cursor is signed with it, so changing how it is
# made invalidates every cursor in flight. Change it only with a new version, and keep accepting the old
# one for the filters it could express (a cursor lives CURSOR_TTL_SECONDS).
FINGERPRINT_VERSION = "v2"
# v1, the format before the field table: these parameters' values, then the sort, joined with "|" (None as "").
V1_FINGERPRINT_PARAMETERS = ("status", "priority", "tag", "dueBefore", "dueAfter")


@dataclass(frozen=True)
class ListQuery:
    filters: Mapping[str, str] = field(default_factory=dict)  # parameter -> value as compared
    sort: str = "createdAt"
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None

    def get(self, parameter: str) -> str | None:
        return self.filters.get(parameter)

    @property
    def fingerprint(self) -> str:
        """What a cursor is bound to: everything that decides which tasks match, in which order.

        Versioned, and each value quoted (JSON), so no two listings share one: not even two free-text
        filters whose values hold the separator.
        """
        given = [[known.parameter, self.filters[known.parameter]] for known in LIST_FILTERS if known.parameter in self]
        return FINGERPRINT_VERSION + json.dumps([given, self.sort], separators=(",", ":"), ensure_ascii=False)

    @property
    def fingerprints(self) -> tuple[str, ...]:
        """Every fingerprint a cursor of this listing may carry: the current one, then the older ones that
        could express its filters."""
        if set(self.filters) - set(V1_FINGERPRINT_PARAMETERS):
            return (self.fingerprint,)
        v1 = (*(self.filters.get(name) or "" for name in V1_FINGERPRINT_PARAMETERS), self.sort)
        return self.fingerprint, "|".join(v1)

    def __contains__(self, parameter: object) -> bool:
        return parameter in self.filters
