"""The region codes accepted for phones written without a country code.

`^[A-Z]{2}$` alone let through codes libphonenumber does not know (`AA`, `ZZ`): stored as a
tenant's or connector's region, or sent with a record, they made phone normalization
raise (a 500 on ingest and look-ups, failed pulls). The schema now lists the known ones.
"""

from __future__ import annotations

from typing import Annotated

import phonenumbers
from pydantic import AfterValidator, Field

SUPPORTED_REGIONS: tuple[str, ...] = tuple(sorted(phonenumbers.SUPPORTED_REGIONS))
_SUPPORTED = frozenset(SUPPORTED_REGIONS)


def _known(value: str) -> str:
    if value not in _SUPPORTED:
        raise ValueError("not a region phone numbers are known for (ISO 3166-1 alpha-2, e.g. US)")
    return value


RegionCode = Annotated[
    str,
    Field(pattern=r"^[A-Z]{2}$", json_schema_extra={"enum": list(SUPPORTED_REGIONS)}),
    AfterValidator(_known),
]
