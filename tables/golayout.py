"""Parse times with a Go reference layout, as Go's ``time.Parse`` does (SPEC §8 Revision).

A resource's ``change.format`` is a Go layout such as ``2006-01-02T15:04:05Z07:00``, so
string revisions must be read exactly as the original Go service read them: the same
elements, the same leniency (a fraction after the seconds, runs of spaces, case-insensitive
names) and the same error text. The code follows Go's ``nextStdChunk`` and ``parse``
(src/time/format.go) step by step so the two can be compared side by side.

Where this differs from Go:

- The result is the exact Unix time in nanoseconds as a Python int; Go's ``UnixNano``
  wraps silently outside the years 1678-2262.
- The local zone is taken to be UTC, so a zone abbreviation (``MST``) other than ``UTC``
  has offset 0, as Go does for an abbreviation its local zone does not know. ``GMT+3``
  only names the zone in Go; the instant is still read as UTC.

Values are handled as their UTF-8 bytes (one latin-1 character per byte) so positions and
the quoting in error messages match Go's byte strings.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

from tables.limits import MAX_FORMAT, MAX_REVISION_STRING

__all__ = ["LayoutError", "parse"]

#: The cut layouts kept, bounded by the characters of their layouts (and so their chunks).
_CACHE_CHARS = 32 * 1024


class LayoutError(ValueError):
    """A value that does not match its layout; the text is Go's ``time.ParseError``."""


class _Chunk(NamedTuple):
    prefix: str  # literal text before the element
    std: str  # element kind: "2006", "Jan", "Z07:00", ".0", ".9", ...; "" ends the layout
    text: str  # the element as written in the layout (Go's stdstr)
    digits: int  # fraction digits of ".0" / ".9"
    frac_next: bool  # a seconds element whose next element is a fraction


_SHORT_DAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
_LONG_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_SHORT_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_LONG_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_DAYS_BEFORE = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365)


def parse(layout: str, value: str) -> int:
    """``time.Parse(layout, value).UnixNano()`` as an exact int; raises :class:`LayoutError`.

    Layouts longer than ``MAX_FORMAT`` and values longer than ``MAX_REVISION_STRING`` are
    refused before any work (SPEC §11a).
    """
    if len(layout) > MAX_FORMAT:
        raise LayoutError(f"layout longer than {MAX_FORMAT}")
    if len(value) > MAX_REVISION_STRING:
        raise LayoutError(f"value longer than {MAX_REVISION_STRING}")
    if not layout.isascii():
        layout = _as_bytes(layout)
    if not value.isascii():
        value = _as_bytes(value)
    avalue = value
    year, month, day, yday = 0, -1, -1, -1
    hour = minute = sec = nsec = 0
    utc, zone_offset = False, -1  # -1 means "no offset", as in Go (so -00:00:01 is ignored too)
    am = pm = False
    for ch in _chunks(layout):
        value, ok = _skip(value, ch.prefix)
        if not ok:
            raise _error(layout, avalue, ch.prefix, value)
        std = ch.std
        if not std:
            if value:
                raise _error(layout, avalue, "", value, ": extra text: " + _quote(value))
            break
        hold, ok, range_err = value, True, ""
        if std == "06":
            if len(value) < 2:
                ok = False
            else:
                year, ok = _atoi(value[:2])
                value = value[2:]
                if ok:
                    year += 1900 if year >= 69 else 2000
        elif std == "2006":
            if len(value) < 4 or not _is_digit(value, 0):
                ok = False
            else:
                year, ok = _atoi(value[:4])
                value = value[4:]
        elif std in ("Jan", "January"):
            month, value, ok = _lookup(_SHORT_MONTHS if std == "Jan" else _LONG_MONTHS, value)
            month += 1
        elif std in ("1", "01"):
            month, value, ok = _getnum(value, std == "01")
            if ok and not 1 <= month <= 12:
                range_err = "month"
        elif std in ("Mon", "Monday"):  # checked, then ignored, as in Go
            _, value, ok = _lookup(_SHORT_DAYS if std == "Mon" else _LONG_DAYS, value)
        elif std in ("2", "_2", "02"):
            if std == "_2" and value[:1] == " ":
                value = value[1:]
            day, value, ok = _getnum(value, std == "02")  # validated with month and year below
        elif std in ("__2", "002"):
            for _ in range(2):
                if std == "__2" and value[:1] == " ":
                    value = value[1:]
            yday, value, ok = _getnum3(value, std == "002")
        elif std == "15":
            hour, value, ok = _getnum(value, False)
            if not 0 <= hour < 24:
                range_err = "hour"
        elif std in ("3", "03"):
            hour, value, ok = _getnum(value, std == "03")
            if not 0 <= hour <= 12:
                range_err = "hour"
        elif std in ("4", "04"):
            minute, value, ok = _getnum(value, std == "04")
            if not 0 <= minute < 60:
                range_err = "minute"
        elif std in ("5", "05"):
            sec, value, ok = _getnum(value, std == "05")
            if ok and not 0 <= sec < 60:
                range_err = "second"
            elif ok and not ch.frac_next and value[:1] in (".", ",") and _is_digit(value, 1):
                # A fraction in the value that the layout does not mention: Go accepts it.
                n = 2
                while _is_digit(value, n):
                    n += 1
                nsec, range_err, ok = _nanoseconds(value, n)
                value = value[n:]
        elif std in ("PM", "pm"):
            if len(value) < 2:
                ok = False
            else:
                mark, value = value[:2], value[2:]
                if mark == std:
                    pm = True
                elif mark == ("AM" if std == "PM" else "am"):
                    am = True
                else:
                    ok = False
        elif std == "MST":
            if value[:3] == "UTC":
                utc, value = True, value[3:]
            else:
                n = _zone_length(value)  # an abbreviation Local (UTC) does not know: offset 0
                ok, value = n > 0, value[n:]
        elif std[0] in "-Z":
            if std[0] == "Z" and value[:1] == "Z":  # every Z form takes a literal Z
                utc, value = True, value[1:]
            else:
                zone_offset, value, range_err, ok = _numeric_zone(std, value)
        elif std == ".0":
            ndigit = 1 + ch.digits  # exactly as many digits as the layout has
            if len(value) < ndigit:
                ok = False
            else:
                nsec, range_err, ok = _nanoseconds(value, ndigit)
                value = value[ndigit:]
        elif std == ".9":
            if len(value) >= 2 and value[0] in ".," and _is_digit(value, 1):
                n = 2  # any number of digits, even more than the layout has
                while _is_digit(value, n):
                    n += 1
                nsec, range_err, ok = _nanoseconds(value, n)
                value = value[n:]
        if range_err:
            raise _error(layout, avalue, ch.text, value, ": " + range_err + " out of range")
        if not ok:
            raise _error(layout, avalue, ch.text, hold)

    if pm and hour < 12:
        hour += 12
    elif am and hour == 12:
        hour = 0
    if yday >= 0:
        month, day = _from_yday(layout, avalue, value, year, yday, month, day)
    else:
        month = 1 if month < 0 else month
        day = 1 if day < 0 else day
    if not 1 <= day <= _days_in(month, year):
        raise _error(layout, avalue, "", value, ": day out of range")

    seconds = ((_days_from_civil(year, month, day) * 24 + hour) * 60 + minute) * 60 + sec
    if not utc and zone_offset != -1:
        seconds -= zone_offset
    return seconds * 1_000_000_000 + nsec


class _Cache:
    """Least recently used cut layouts, bounded by the sum of their layouts' lengths."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self.items: OrderedDict[str, tuple[_Chunk, ...]] = OrderedDict()

    def get(self, layout: str) -> tuple[_Chunk, ...] | None:
        found = self.items.get(layout)
        if found is not None:
            self.items.move_to_end(layout)
        return found

    def put(self, layout: str, chunks: tuple[_Chunk, ...]) -> None:
        size = max(len(layout), 1)
        if size > self.budget or layout in self.items:
            return
        while self.used + size > self.budget:
            old, _ = self.items.popitem(last=False)
            self.used -= max(len(old), 1)
        self.items[layout] = chunks
        self.used += size


_cache = _Cache(_CACHE_CHARS)


def _chunks(layout: str) -> tuple[_Chunk, ...]:
    """The layout cut into elements once: revisions are parsed per message (hot path)."""
    found = _cache.get(layout)
    if found is None:
        found = _cut(layout)
        _cache.put(layout, found)
    return found


def _cut(layout: str) -> tuple[_Chunk, ...]:
    raw = []
    while True:
        prefix, std, digits, suffix = _next_chunk(layout)
        raw.append((prefix, std, layout[len(prefix) : len(layout) - len(suffix)], digits))
        if not std:
            break
        layout = suffix
    return tuple(
        _Chunk(p, s, t, d, s in ("5", "05") and raw[i + 1][1] in (".0", ".9"))
        for i, (p, s, t, d) in enumerate(raw)
    )


def _next_chunk(layout: str) -> tuple[str, str, int, str]:
    """Go's ``nextStdChunk``: (text before, element kind, fraction digits, text after)."""
    n, at = len(layout), layout.startswith
    for i, c in enumerate(layout):
        if c == "J":
            if at("January", i):
                return layout[:i], "January", 0, layout[i + 7 :]
            if at("Jan", i) and not _starts_lower(layout, i + 3):
                return layout[:i], "Jan", 0, layout[i + 3 :]
        elif c == "M":
            if at("Monday", i):
                return layout[:i], "Monday", 0, layout[i + 6 :]
            if at("Mon", i) and not _starts_lower(layout, i + 3):
                return layout[:i], "Mon", 0, layout[i + 3 :]
            if at("MST", i):
                return layout[:i], "MST", 0, layout[i + 3 :]
        elif c == "0":
            if i + 1 < n and "1" <= layout[i + 1] <= "6":
                return layout[:i], layout[i : i + 2], 0, layout[i + 2 :]
            if at("002", i):
                return layout[:i], "002", 0, layout[i + 3 :]
        elif c == "1":
            if at("15", i):
                return layout[:i], "15", 0, layout[i + 2 :]
            return layout[:i], "1", 0, layout[i + 1 :]
        elif c == "2":
            if at("2006", i):
                return layout[:i], "2006", 0, layout[i + 4 :]
            return layout[:i], "2", 0, layout[i + 1 :]
        elif c == "_":
            if at("_2006", i):  # a literal "_" then the year
                return layout[: i + 1], "2006", 0, layout[i + 5 :]
            if at("_2", i):
                return layout[:i], "_2", 0, layout[i + 2 :]
            if at("__2", i):
                return layout[:i], "__2", 0, layout[i + 3 :]
        elif c in "345":
            return layout[:i], c, 0, layout[i + 1 :]
        elif c == "P" and at("PM", i) or c == "p" and at("pm", i):
            return layout[:i], layout[i : i + 2], 0, layout[i + 2 :]
        elif c in "-Z":
            for std in (c + "070000", c + "07:00:00", c + "0700", c + "07:00", c + "07"):
                if at(std, i):
                    return layout[:i], std, 0, layout[i + len(std) :]
        elif c in ".," and i + 1 < n and layout[i + 1] in "09":
            j = i + 1
            while j < n and layout[j] == layout[i + 1]:
                j += 1
            if not _is_digit(layout, j):  # ".000" but not ".0001"
                return layout[:i], "." + layout[i + 1], j - i - 1, layout[j:]
    return layout, "", 0, ""


def _numeric_zone(std: str, value: str) -> tuple[int, str, str, bool]:
    """A ±hh[[:]mm[[:]ss]] offset: (offset seconds, rest, range error, ok)."""
    shape = std[1:]
    if shape == "07:00":
        ok = len(value) >= 6 and value[3] == ":"
        parts, size = (value[1:3], value[4:6], "00"), 6
    elif shape == "07":
        ok = len(value) >= 3
        parts, size = (value[1:3], "00", "00"), 3
    elif shape == "07:00:00":
        ok = len(value) >= 9 and value[3] == ":" and value[6] == ":"
        parts, size = (value[1:3], value[4:6], value[7:9]), 9
    elif shape == "070000":
        ok = len(value) >= 7
        parts, size = (value[1:3], value[3:5], value[5:7]), 7
    else:  # "0700"
        ok = len(value) >= 5
        parts, size = (value[1:3], value[3:5], "00"), 5
    if not ok:
        return -1, value, "", False
    sign, value = value[0], value[size:]
    hh, _, ok = _getnum(parts[0], True)
    mm, _, ok = _getnum(parts[1], True) if ok else (0, "", False)
    ss, _, ok = _getnum(parts[2], True) if ok else (0, "", False)
    range_err = ""  # ">" not ">=": some people write 24 hours or 60 minutes (Go's comment)
    if hh > 24:
        range_err = "time zone offset hour"
    if mm > 60:
        range_err = "time zone offset minute"
    if ss > 60:
        range_err = "time zone offset second"
    offset = (hh * 60 + mm) * 60 + ss
    if sign == "-":
        offset = -offset
    elif sign != "+":
        ok = False
    return offset, value, range_err, ok


def _zone_length(value: str) -> int:
    """Go's ``parseTimeZone``: how long the abbreviation at the start is, 0 if none."""
    if len(value) < 3:
        return 0
    if value[:4] in ("ChST", "MeST"):
        return 4
    if value[:3] == "GMT":
        return 3 + _signed_offset(value[3:])
    if value[0] in "+-":
        return _signed_offset(value)
    upper = 0
    while upper < 6 and upper < len(value) and "A" <= value[upper] <= "Z":
        upper += 1
    if upper == 3:
        return 3
    if upper == 4 and (value[3] == "T" or value[:4] == "WITA"):
        return 4
    if upper == 5 and value[4] == "T":
        return 5
    return 0


def _signed_offset(value: str) -> int:
    """Go's ``parseSignedOffset``: the length of "+h"/"-hh" (hours at most 23), 0 if none."""
    if not value or value[0] not in "+-":
        return 0
    n = 1
    while _is_digit(value, n):
        n += 1
    if n == 1 or int(value[1:n]) > 23:
        return 0
    return n


def _nanoseconds(value: str, nbytes: int) -> tuple[int, str, bool]:
    """Go's ``parseNanoseconds``: ".ddd" (at most 9 digits count) → (ns, range error, ok)."""
    if value[0] not in ".,":
        return 0, "", False
    nbytes = min(nbytes, 10)
    ns, ok = _atoi(value[1:nbytes])
    if not ok:
        return 0, "", False
    if ns < 0:
        return ns, "fractional second", True
    return ns * 10 ** (10 - nbytes), "", True


def _from_yday(
    layout: str, avalue: str, value: str, year: int, yday: int, month: int, day: int
) -> tuple[int, int]:
    """Month and day from a day of the year, checked against any month and day seen."""
    m = d = 0
    if _is_leap(year):
        if yday == 31 + 29:
            m, d = 2, 29
        elif yday > 31 + 29:
            yday -= 1
    if not 1 <= yday <= 365:
        raise _error(layout, avalue, "", value, ": day-of-year out of range")
    if m == 0:
        m = (yday - 1) // 31 + 1
        if _DAYS_BEFORE[m] < yday:
            m += 1
        d = yday - _DAYS_BEFORE[m - 1]
    if month >= 0 and month != m:
        raise _error(layout, avalue, "", value, ": day-of-year does not match month")
    if day >= 0 and day != d:
        raise _error(layout, avalue, "", value, ": day-of-year does not match day")
    return m, d


def _skip(value: str, prefix: str) -> tuple[str, bool]:
    """Go's ``skip``: drop the literal prefix; a run of spaces matches any run of spaces."""
    while prefix:
        if prefix[0] == " ":
            if value and value[0] != " ":
                return value, False
            prefix, value = prefix.lstrip(" "), value.lstrip(" ")
            continue
        if not value or value[0] != prefix[0]:
            return value, False
        prefix, value = prefix[1:], value[1:]
    return value, True


def _lookup(names: tuple[str, ...], value: str) -> tuple[int, str, bool]:
    """Index of the name the value starts with, ignoring ASCII case; -1 if none."""
    for i, name in enumerate(names):
        head = value[: len(name)]
        if head.isascii() and head.lower() == name.lower():
            return i, value[len(name) :], True
    return -1, value, False


def _getnum(s: str, fixed: bool) -> tuple[int, str, bool]:
    """One or two digits (exactly two when fixed)."""
    if not _is_digit(s, 0):
        return 0, s, False
    if not _is_digit(s, 1):
        return (0, s, False) if fixed else (ord(s[0]) - 48, s[1:], True)
    return (ord(s[0]) - 48) * 10 + ord(s[1]) - 48, s[2:], True


def _getnum3(s: str, fixed: bool) -> tuple[int, str, bool]:
    """One to three digits (exactly three when fixed)."""
    i = 0
    while i < 3 and _is_digit(s, i):
        i += 1
    if i == 0 or (fixed and i != 3):
        return 0, s, False
    return int(s[:i]), s[i:], True


def _atoi(s: str) -> tuple[int, bool]:
    """Go's ``atoi``: optional sign then digits only (the empty string is 0)."""
    neg = s[:1] == "-"
    if s[:1] in ("-", "+"):
        s = s[1:]
    if s and not (s.isascii() and s.isdigit()):
        return 0, False
    x = int(s) if s else 0
    if x > 1 << 63:
        return 0, False
    return -x if neg else x, True


def _is_digit(s: str, i: int) -> bool:
    return i < len(s) and "0" <= s[i] <= "9"


def _starts_lower(s: str, i: int) -> bool:
    return i < len(s) and "a" <= s[i] <= "z"


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _days_in(month: int, year: int) -> int:
    if month == 2 and _is_leap(year):
        return 29
    return _DAYS_BEFORE[month] - _DAYS_BEFORE[month - 1]


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar, any year (H. Hinnant)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def _as_bytes(s: str) -> str:
    """One character per UTF-8 byte, so lengths and positions are Go's."""
    return s.encode("utf-8", "surrogatepass").decode("latin-1")


def _quote(s: str) -> str:
    """Go's ``time.quote``: control and non-ASCII bytes as \\xNN, quote and backslash escaped."""
    out = ['"']
    for c in s:
        if c < " " or c >= "\x80":
            out.append(f"\\x{ord(c):02x}")
        elif c in '"\\':
            out.append("\\" + c)
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def _error(
    layout: str, value: str, layout_elem: str, value_elem: str, message: str = ""
) -> LayoutError:
    """Go's ``ParseError.Error()`` text."""
    if message:
        return LayoutError(f"parsing time {_quote(value)}{message}")
    return LayoutError(
        f"parsing time {_quote(value)} as {_quote(layout)}: "
        f"cannot parse {_quote(value_elem)} as {_quote(layout_elem)}"
    )
