"""The bounds on what clients send (SPEC §11a), in one table so docs and tests name them.

Every value past a bound is a 400 with the route's usual title and a detail naming the
bound (``... longer than N``). Bytes are counted as UTF-8; lengths of Python strings as
characters, which is never more than their UTF-8 bytes.
"""

from __future__ import annotations

#: A resource endpoint or a subscriber URL, as sent (before percent-decoding).
MAX_URL = 4096
#: ``change.field``: the name of a top-level field.
MAX_FIELD = 256
#: ``change.format``: a Go layout (the longest of Go's own is 35 characters).
MAX_FORMAT = 128
#: A string revision read with ``change.format``.
MAX_REVISION_STRING = 256
#: Headers of one target (``endpoint`` or one action): names, values per name, sizes.
MAX_HEADER_NAMES = 32
MAX_HEADER_VALUES = 16
MAX_HEADER_NAME = 256
MAX_HEADER_VALUE = 4096
MAX_HEADER_BYTES = 16 * 1024
#: ``delivery.success`` / ``delivery.discard`` entries; statuses are HTTP's 100-599.
MAX_STATUSES = 100
#: The shortest retry delay a client may ask for, seconds (§9.6 ``delivery.retry``).
MIN_RETRY_DELAY = 0.1
#: Integer query parameters (``offset``, ``limit``): at most a signed 64-bit integer.
MAX_QUERY_INTEGER = 2**63 - 1
