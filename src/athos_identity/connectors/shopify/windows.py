"""Date windows of a bulk export: a failed or stuck export is run again over smaller ranges.

A window is `[from, to)` on `updated_at`, as two ISO-8601 UTC strings (seconds), either
`None` for an open end; `[None, None]` is the whole stream. Shopify's search syntax takes
`updated_at:>='A' AND updated_at:<'B'` on bulk queries as on connections. When the export
of a window fails, the window is halved (`split`); a half narrower than `MIN_WINDOW` is not
made, and the export gives up (the job retries later). The last window keeps its open upper
end, so records changed while the export runs are never left out.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

MIN_WINDOW = timedelta(days=1)

Window = list[str | None]
WHOLE: Window = [None, None]


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def moment(text: str | None) -> datetime | None:
    if not text:
        return None
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def search(window: Window) -> str | None:
    """The `query:` argument restricting an export to `window` (None: the whole stream)."""
    low, high = window
    terms = []
    if low:
        terms.append(f"updated_at:>='{low}'")
    if high:
        terms.append(f"updated_at:<'{high}'")
    return " AND ".join(terms) or None


def argument(window: Window) -> str:
    """`(query: "…")` for a connection field of a bulk query, or nothing."""
    terms = search(window)
    return f"(query: {json.dumps(terms)})" if terms else ""


def split(
    window: Window,
    *,
    earliest: datetime | None,
    now: datetime,
    minimum: timedelta = MIN_WINDOW,
) -> list[Window] | None:
    """The two halves of `window`, or None when a half would be narrower than `minimum`.
    An open lower end starts at `earliest` (the oldest change in the stream), an open upper
    end stops at `now`; the halves keep the open ends."""
    low = moment(window[0]) or earliest
    high = moment(window[1]) or now
    if low is None or high - low < 2 * minimum:
        return None
    middle = stamp(low + (high - low) / 2)
    return [[window[0], middle], [middle, window[1]]]
