"""Database ids: the range a bigint primary key can hold, shared by every layer that takes an id as input.

A larger id cannot exist, and asking the database for one fails (an out-of-range error) instead of
finding nothing; callers reject it first. Documents is the lowest layer with database models, so
analytics, the API and the page import it from here.
"""

MAX_ID = 2**63 - 1


def is_storable_id(value) -> bool:
    """A positive int (not a bool) that fits a bigint column."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID
