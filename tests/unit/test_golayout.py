"""Tables for tables/golayout.py: Go reference layouts (SPEC §8 Revision).

Every expected value and message was produced by Go's own time.Parse (Go 1.26, TZ=UTC)
and written down here, so these rows pin the Python port to Go's behaviour.
"""

import pytest

from tables import golayout
from tables.golayout import LayoutError, parse
from tables.limits import MAX_FORMAT, MAX_REVISION_STRING

RFC3339 = "2006-01-02T15:04:05Z07:00"

# SPEC §8: a string revision is the time it names, in Unix nanoseconds.
PARSED = [
    pytest.param(RFC3339, "2010-12-10T08:35:08.008Z", 1291970108008000000, id="spec-vector"),
    pytest.param("2006", "2010", 1262304000000000000, id="2006-year-only"),
    pytest.param("06", "10", 1262304000000000000, id="06-10-is-2010"),
    pytest.param("06", "00", 946684800000000000, id="06-00-is-2000"),
    pytest.param("06", "68", 3092601600000000000, id="06-68-is-2068"),
    pytest.param("06", "69", -31536000000000000, id="06-69-is-1969"),
    pytest.param("06", "99", 915148800000000000, id="06-99-is-1999"),
    pytest.param("2006-01", "2010-12", 1291161600000000000, id="01-zero-month"),
    pytest.param("2006-1", "2010-3", 1267401600000000000, id="1-month-one-digit"),
    pytest.param("2006-1", "2010-11", 1288569600000000000, id="1-month-two-digits"),
    pytest.param("Jan 2006", "Sep 2010", 1283299200000000000, id="Jan-short-month"),
    pytest.param("Jan 2006", "sEP 2010", 1283299200000000000, id="Jan-any-case"),
    pytest.param("January 2006", "September 2010", 1283299200000000000, id="January-long-month"),
    pytest.param("2006-01-02", "2010-12-09", 1291852800000000000, id="02-zero-day"),
    pytest.param("2006-01-2", "2010-12-9", 1291852800000000000, id="2-day-one-digit"),
    pytest.param("2006-01-2", "2010-12-31", 1293753600000000000, id="2-day-two-digits"),
    pytest.param("Jan _2 2006", "Dec  9 2010", 1291852800000000000, id="_2-space-padded"),
    pytest.param("Jan _2 2006", "Dec 19 2010", 1292716800000000000, id="_2-two-digits"),
    pytest.param("Jan _2 2006", "Dec 9 2010", 1291852800000000000, id="_2-no-pad"),
    pytest.param("Mon 2006-01-02", "Fri 2010-12-10", 1291939200000000000, id="Mon-weekday"),
    pytest.param(
        "Mon 2006-01-02", "Sun 2010-12-10",
        1291939200000000000,
        id="Mon-wrong-weekday-ignored",
    ),
    pytest.param(
        "Monday 2006-01-02", "Friday 2010-12-10",
        1291939200000000000,
        id="Monday-long-weekday",
    ),
    pytest.param("2006-01-02 15", "2010-12-10 23", 1292022000000000000, id="15-hour"),
    pytest.param("2006-01-02 15:04", "2010-12-10 7:05", 1291964700000000000, id="15-one-digit"),
    pytest.param("2006-01-02 03:04PM", "2010-12-10 08:35PM", 1292013300000000000, id="03-PM"),
    pytest.param("2006-01-02 03:04PM", "2010-12-10 08:35AM", 1291970100000000000, id="03-AM"),
    pytest.param(
        "2006-01-02 3:04PM", "2010-12-10 12:35AM",
        1291941300000000000,
        id="3-12AM-is-midnight",
    ),
    pytest.param(
        "2006-01-02 3:04PM", "2010-12-10 12:35PM",
        1291984500000000000,
        id="3-12PM-is-noon",
    ),
    pytest.param("2006-01-02 3:04pm", "2010-12-10 8:35pm", 1292013300000000000, id="pm-lower"),
    pytest.param("2006-01-02 3:04pm", "2010-12-10 8:35am", 1291970100000000000, id="am-lower"),
    pytest.param(
        "2006-01-02 15:04:05", "2010-12-10 08:05:09",
        1291968309000000000,
        id="04-05-zero-padded",
    ),
    pytest.param("2006-01-02 15:4:5", "2010-12-10 08:5:9", 1291968309000000000, id="4-5-one-digit"),
    pytest.param("2006-01-02 15:04 MST", "2010-12-10 08:35 UTC", 1291970100000000000, id="MST-UTC"),
    pytest.param(
        "2006-01-02 15:04 MST", "2010-12-10 08:35 PST",
        1291970100000000000,
        id="MST-unknown-is-offset-0",
    ),
    pytest.param(
        "2006-01-02 15:04 MST", "2010-12-10 08:35 GMT+3",
        1291970100000000000,
        id="MST-GMT-plus-is-offset-0",
    ),
    pytest.param(
        "2006-01-02 15:04 MST", "2010-12-10 08:35 CEST",
        1291970100000000000,
        id="MST-4-letters",
    ),
    pytest.param(RFC3339, "2010-12-10T08:35:08Z", 1291970108000000000, id="Z07:00-Z"),
    pytest.param(RFC3339, "2010-12-10T08:35:08+05:30", 1291950308000000000, id="Z07:00-positive"),
    pytest.param(RFC3339, "2010-12-10T08:35:08-08:00", 1291998908000000000, id="Z07:00-negative"),
    pytest.param(
        "2006-01-02T15:04:05Z0700", "2010-12-10T08:35:08Z",
        1291970108000000000,
        id="Z0700-Z",
    ),
    pytest.param(
        "2006-01-02T15:04:05Z0700", "2010-12-10T08:35:08+0530",
        1291950308000000000,
        id="Z0700-positive",
    ),
    pytest.param(
        "2006-01-02T15:04:05Z0700", "2010-12-10T08:35:08-0800",
        1291998908000000000,
        id="Z0700-negative",
    ),
    pytest.param("2006-01-02T15:04:05Z07", "2010-12-10T08:35:08Z", 1291970108000000000, id="Z07-Z"),
    pytest.param(
        "2006-01-02T15:04:05Z07", "2010-12-10T08:35:08+05",
        1291952108000000000,
        id="Z07-positive",
    ),
    pytest.param(
        "2006-01-02T15:04:05Z07", "2010-12-10T08:35:08-08",
        1291998908000000000,
        id="Z07-negative",
    ),
    pytest.param(
        "2006-01-02T15:04:05-07:00", "2010-12-10T08:35:08+05:30",
        1291950308000000000,
        id="-07:00-positive",
    ),
    pytest.param(
        "2006-01-02T15:04:05-07:00", "2010-12-10T08:35:08-08:00",
        1291998908000000000,
        id="-07:00-negative",
    ),
    pytest.param(
        "2006-01-02T15:04:05-0700", "2010-12-10T08:35:08+0530",
        1291950308000000000,
        id="-0700-positive",
    ),
    pytest.param(
        "2006-01-02T15:04:05-0700", "2010-12-10T08:35:08-0800",
        1291998908000000000,
        id="-0700-negative",
    ),
    pytest.param(
        "2006-01-02T15:04:05-07", "2010-12-10T08:35:08+05",
        1291952108000000000,
        id="-07-positive",
    ),
    pytest.param(
        "2006-01-02T15:04:05-07", "2010-12-10T08:35:08-08",
        1291998908000000000,
        id="-07-negative",
    ),
    pytest.param(
        "2006-01-02T15:04:05-07:00:00", "2010-12-10T08:35:08+01:02:03",
        1291966385000000000,
        id="-07:00:00-seconds",
    ),
    pytest.param(
        "2006-01-02T15:04:05Z070000", "2010-12-10T08:35:08Z",
        1291970108000000000,
        id="Z070000-Z",
    ),
    pytest.param(
        RFC3339, "2010-12-10T08:35:08+24:00",
        1291883708000000000,
        id="offset-24h-accepted",
    ),
    pytest.param(
        "2006-01-02 15:04:05.000", "2010-12-10 08:35:08.008",
        1291970108008000000,
        id=".000-exact",
    ),
    pytest.param(
        "2006-01-02 15:04:05,000", "2010-12-10 08:35:08,008",
        1291970108008000000,
        id=",000-comma",
    ),
    pytest.param(
        "2006-01-02 15:04:05.000", "2010-12-10 08:35:08,008",
        1291970108008000000,
        id=".000-value-comma",
    ),
    pytest.param(
        "2006-01-02 15:04:05.0", "2010-12-10 08:35:08.5",
        1291970108500000000,
        id=".0-one-digit",
    ),
    pytest.param(
        "2006-01-02 15:04:05.000000000", "2010-12-10 08:35:08.000000001",
        1291970108000000001,
        id=".000000000-nine",
    ),
    pytest.param(
        "2006-01-02 15:04:05.999", "2010-12-10 08:35:08.5",
        1291970108500000000,
        id=".999-fewer-digits",
    ),
    pytest.param(
        "2006-01-02 15:04:05.999", "2010-12-10 08:35:08.123456",
        1291970108123456000,
        id=".999-more-digits",
    ),
    pytest.param(
        "2006-01-02 15:04:05.999", "2010-12-10 08:35:08",
        1291970108000000000,
        id=".999-omitted",
    ),
    pytest.param(
        "2006-01-02 15:04:05,999", "2010-12-10 08:35:08,25",
        1291970108250000000,
        id=",999-comma",
    ),
    pytest.param(
        "2006-01-02 15:04:05.9", "2010-12-10 08:35:08.75",
        1291970108750000000,
        id=".9-one-nine",
    ),
    pytest.param(
        "2006-01-02 15:04:05", "2010-12-10 08:35:08.25",
        1291970108250000000,
        id="fraction-not-in-layout",
    ),
    pytest.param(
        "2006-01-02 15:04:05", "2010-12-10 08:35:08,25",
        1291970108250000000,
        id="fraction-not-in-layout-comma",
    ),
    pytest.param(
        "2006-01-02 15:04:05", "2010-12-10 08:35:08.123456789987",
        1291970108123456789,
        id="fraction-past-ns-truncated",
    ),
    pytest.param(
        "2006-01-02T15:04:05.999999999Z07:00", "2010-12-10T08:35:08.1Z",
        1291970108100000000,
        id="RFC3339Nano-1-digits",
    ),
    pytest.param(
        "2006-01-02T15:04:05.999999999Z07:00", "2010-12-10T08:35:08.12Z",
        1291970108120000000,
        id="RFC3339Nano-2-digits",
    ),
    pytest.param(
        "2006-01-02T15:04:05.999999999Z07:00", "2010-12-10T08:35:08.123Z",
        1291970108123000000,
        id="RFC3339Nano-3-digits",
    ),
    pytest.param(
        "2006-01-02T15:04:05.999999999Z07:00", "2010-12-10T08:35:08.1234Z",
        1291970108123400000,
        id="RFC3339Nano-4-digits",
    ),
    pytest.param(
        "2006-01-02T15:04:05.999999999Z07:00", "2010-12-10T08:35:08.12345Z",
        1291970108123450000,
        id="RFC3339Nano-5-digits",
    ),
    pytest.param(
        "2006-01-02T15:04:05.999999999Z07:00", "2010-12-10T08:35:08.123456Z",
        1291970108123456000,
        id="RFC3339Nano-6-digits",
    ),
    pytest.param(
        "2006-01-02T15:04:05.999999999Z07:00", "2010-12-10T08:35:08.1234567Z",
        1291970108123456700,
        id="RFC3339Nano-7-digits",
    ),
    pytest.param(
        "2006-01-02T15:04:05.999999999Z07:00", "2010-12-10T08:35:08.12345678Z",
        1291970108123456780,
        id="RFC3339Nano-8-digits",
    ),
    pytest.param(
        "2006-01-02T15:04:05.999999999Z07:00", "2010-12-10T08:35:08.123456789Z",
        1291970108123456789,
        id="RFC3339Nano-9-digits",
    ),
    pytest.param(
        "2006-01-02T15:04:05.999999999Z07:00", "2010-12-10T08:35:08.5-03:00",
        1291980908500000000,
        id="RFC3339Nano-offset",
    ),
    pytest.param(
        "Mon, 02 Jan 2006 15:04:05 MST", "Fri, 10 Dec 2010 08:35:08 UTC",
        1291970108000000000,
        id="RFC1123-UTC",
    ),
    pytest.param(
        "Mon, 02 Jan 2006 15:04:05 MST", "Fri, 10 Dec 2010 08:35:08 GMT",
        1291970108000000000,
        id="RFC1123-GMT",
    ),
    pytest.param(
        "Mon, 02 Jan 2006 15:04:05 -0700", "Fri, 10 Dec 2010 08:35:08 +0100",
        1291966508000000000,
        id="RFC1123Z",
    ),
    pytest.param("02 Jan 06 15:04 MST", "10 Dec 10 08:35 UTC", 1291970100000000000, id="RFC822"),
    pytest.param(
        "Monday, 02-Jan-06 15:04:05 MST", "Friday, 10-Dec-10 08:35:08 UTC",
        1291970108000000000,
        id="RFC850",
    ),
    pytest.param(
        "Mon Jan _2 15:04:05 2006", "Fri Dec 10 08:35:08 2010",
        1291970108000000000,
        id="ANSIC",
    ),
    pytest.param("3:04PM", "8:35AM", -62167188300000000000, id="Kitchen-date-defaults-0000-01-01"),
    pytest.param("2006-01-02", "2010-12-10", 1291939200000000000, id="DateOnly"),
    pytest.param("2006 01 02", "2010   12    10", 1291939200000000000, id="spaces-run-matches-run"),
    pytest.param("x_2006", "x_2010", 1262304000000000000, id="_2006-literal-underscore"),
    pytest.param("2006-002", "2024-060", 1709164800000000000, id="002-day-of-year"),
    pytest.param("2006-01-02", "2024-02-29", 1709164800000000000, id="leap-day-2024"),
    pytest.param("2006-01-02", "2000-02-29", 951782400000000000, id="leap-day-2000"),
    pytest.param(RFC3339, "1970-01-01T00:00:00Z", 0, id="epoch"),
    pytest.param(RFC3339, "1969-12-31T23:59:59Z", -1000000000, id="before-1970-one-second"),
    pytest.param(
        "2006-01-02 15:04:05", "1969-12-31 23:59:59.999999999",
        -1,
        id="before-1970-one-ns",
    ),
    pytest.param("2006-01-02", "1900-01-01", -2208988800000000000, id="before-1970-1900"),
    pytest.param(RFC3339, "1969-07-20T20:17:40-05:00", -14164940000000000, id="before-1970-offset"),
    pytest.param("2006-01-02", "0001-01-01", -62135596800000000000, id="year-0001"),
    pytest.param(
        "2006-01-02T15:04:05.999999999Z07:00", "9999-12-31T23:59:59.999999999Z",
        253402300799999999999,
        id="year-9999-past-int64",
    ),
]

# SPEC §8: anything Go rejects is unparsable, with Go's message.
REJECTED = [
    pytest.param(
        RFC3339, "x",
        'parsing time "x" as "2006-01-02T15:04:05Z07:00": cannot parse "x" as "2006"',
        id="brief-example",
    ),
    pytest.param(
        "2006-01-02", "2010/12/10",
        'parsing time "2010/12/10" as "2006-01-02": cannot parse "/12/10" as "-"',
        id="literal-mismatch",
    ),
    pytest.param(
        RFC3339, "",
        'parsing time "" as "2006-01-02T15:04:05Z07:00": cannot parse "" as "2006"',
        id="empty-value",
    ),
    pytest.param(
        "2006-01-02", "2010-13-10",
        'parsing time "2010-13-10": month out of range',
        id="month-13",
    ),
    pytest.param(
        "2006-01-02", "2010-00-10",
        'parsing time "2010-00-10": month out of range',
        id="month-0",
    ),
    pytest.param(
        "2006-01-02", "2010-12-32",
        'parsing time "2010-12-32": day out of range',
        id="day-32",
    ),
    pytest.param(
        "2006-01-02", "2010-12-00",
        'parsing time "2010-12-00": day out of range',
        id="day-0",
    ),
    pytest.param(
        "2006-01-02", "2024-02-30",
        'parsing time "2024-02-30": day out of range',
        id="feb-30",
    ),
    pytest.param(
        "2006-01-02", "2023-02-29",
        'parsing time "2023-02-29": day out of range',
        id="feb-29-non-leap",
    ),
    pytest.param(
        "2006-01-02", "1900-02-29",
        'parsing time "1900-02-29": day out of range',
        id="feb-29-1900-non-leap",
    ),
    pytest.param(
        "2006-01-02", "2010-04-31",
        'parsing time "2010-04-31": day out of range',
        id="apr-31",
    ),
    pytest.param("15:04", "24:00", 'parsing time "24:00": hour out of range', id="hour-24"),
    pytest.param("15:04", "25:00", 'parsing time "25:00": hour out of range', id="hour-25"),
    pytest.param("3:04PM", "13:00PM", 'parsing time "13:00PM": hour out of range', id="hour12-13"),
    pytest.param("15:04", "10:60", 'parsing time "10:60": minute out of range', id="minute-60"),
    pytest.param(
        "15:04:05", "10:00:60",
        'parsing time "10:00:60": second out of range',
        id="second-60",
    ),
    pytest.param(
        "2006-01-02", "2010-12-10T08:35:08Z",
        'parsing time "2010-12-10T08:35:08Z": extra text: "T08:35:08Z"',
        id="trailing-text",
    ),
    pytest.param(
        "2006-01-02", "2010-12-10 x",
        'parsing time "2010-12-10 x": extra text: " x"',
        id="trailing-space",
    ),
    pytest.param(
        "2006-01-02", "2010-12-9",
        'parsing time "2010-12-9" as "2006-01-02": cannot parse "9" as "02"',
        id="fixed-02-one-digit",
    ),
    pytest.param(
        "2006-01-02", "10-12-09",
        'parsing time "10-12-09" as "2006-01-02": cannot parse "10-12-09" as "2006"',
        id="fixed-year-short",
    ),
    pytest.param(
        "_2 Jan", "  9 Dec",
        'parsing time "  9 Dec" as "_2 Jan": cannot parse "  9 Dec" as "_2"',
        id="_2-two-spaces",
    ),
    pytest.param(
        "Jan 2006", "Foo 2010",
        'parsing time "Foo 2010" as "Jan 2006": cannot parse "Foo 2010" as "Jan"',
        id="bad-month-name",
    ),
    pytest.param(
        "Mon 2006", "Fooday 2010",
        'parsing time "Fooday 2010" as "Mon 2006": cannot parse "Fooday 2010" as "Mon"',
        id="bad-weekday",
    ),
    pytest.param(
        "3PM", "3XM",
        'parsing time "3XM" as "3PM": cannot parse "XM" as "PM"',
        id="bad-PM",
    ),
    pytest.param(
        "3PM", "3pm",
        'parsing time "3pm" as "3PM": cannot parse "pm" as "PM"',
        id="PM-case-strict",
    ),
    pytest.param(
        "15:04:05.000", "10:00:00.12",
        'parsing time "10:00:00.12" as "15:04:05.000": cannot parse ".12" as ".000"',
        id=".000-too-few-digits",
    ),
    pytest.param(
        "15:04:05.000", "10:00:00",
        'parsing time "10:00:00" as "15:04:05.000": cannot parse "" as ".000"',
        id=".000-missing",
    ),
    pytest.param(
        "15:04:05.000", "10:00:00.-12",
        'parsing time "10:00:00.-12": fractional second out of range',
        id="fraction-negative",
    ),
    pytest.param(
        RFC3339, "2010-12-10T08:35:08",
        'parsing time "2010-12-10T08:35:08" as "2006-01-02T15:04:05Z07:00": cannot parse "" as "Z07:00"',
        id="zone-missing",
    ),
    pytest.param(
        RFC3339, "2010-12-10T08:35:08+0100",
        'parsing time "2010-12-10T08:35:08+0100" as "2006-01-02T15:04:05Z07:00": cannot parse "+0100" as "Z07:00"',
        id="zone-no-colon",
    ),
    pytest.param(
        RFC3339, "2010-12-10T08:35:08*01:00",
        'parsing time "2010-12-10T08:35:08*01:00" as "2006-01-02T15:04:05Z07:00": cannot parse "*01:00" as "Z07:00"',
        id="zone-bad-sign",
    ),
    pytest.param(
        RFC3339, "2010-12-10T08:35:08+25:00",
        'parsing time "2010-12-10T08:35:08+25:00": time zone offset hour out of range',
        id="zone-hour-25",
    ),
    pytest.param(
        RFC3339, "2010-12-10T08:35:08+01:61",
        'parsing time "2010-12-10T08:35:08+01:61": time zone offset minute out of range',
        id="zone-minute-61",
    ),
    pytest.param(
        "2006-01-02T15:04:05-07:00", "2010-12-10T08:35:08Z",
        'parsing time "2010-12-10T08:35:08Z" as "2006-01-02T15:04:05-07:00": cannot parse "Z" as "-07:00"',
        id="zone-numeric-form-no-Z",
    ),
    pytest.param(
        "15:04 MST", "10:00 AB",
        'parsing time "10:00 AB" as "15:04 MST": cannot parse "AB" as "MST"',
        id="MST-two-letters",
    ),
    pytest.param(
        "15:04 MST", "10:00 ABCDEF",
        'parsing time "10:00 ABCDEF" as "15:04 MST": cannot parse "ABCDEF" as "MST"',
        id="MST-six-letters",
    ),
    pytest.param(
        "2006-002", "2023-366",
        'parsing time "2023-366": day-of-year out of range',
        id="day-of-year-366-non-leap",
    ),
    pytest.param(
        "2006", '"é\t',
        'parsing time "\\"\\xc3\\xa9\\x09" as "2006": cannot parse "\\"\\xc3\\xa9\\x09" as "2006"',
        id="quote-escapes",
    ),
]


@pytest.mark.parametrize(("layout", "value", "want"), PARSED)
def test_parse(layout: str, value: str, want: int) -> None:
    assert parse(layout, value) == want


@pytest.mark.parametrize(("layout", "value", "message"), REJECTED)
def test_reject(layout: str, value: str, message: str) -> None:
    with pytest.raises(LayoutError) as caught:
        parse(layout, value)
    assert str(caught.value) == message


def test_layout_error_is_value_error() -> None:
    assert issubclass(LayoutError, ValueError)


def test_layout_is_tokenised_once() -> None:
    # Hot path: a layout is cut into elements once, then reused for every message.
    layout = "2006-01-02 15:04:05.000 -0700 (cache probe)"
    parse(layout, "2010-12-10 08:35:08.008 +0000 (cache probe)")
    cached = golayout._cache.get(layout)
    assert cached is not None
    parse(layout, "2011-01-01 00:00:00.000 +0100 (cache probe)")
    assert golayout._cache.get(layout) is cached


def test_cache_is_bounded_in_characters_not_entries() -> None:
    # SPEC §11a: caches are bounded in bytes; the oldest layouts go first.
    cache = golayout._Cache(budget=100)
    chunks = golayout._cut("2006")
    for n in range(10):
        cache.put(f"{n:02d}" + "x" * 38, chunks)  # 40 characters each
    assert cache.used <= 100
    assert list(cache.items) == ["08" + "x" * 38, "09" + "x" * 38]
    cache.put("y" * 101, chunks)  # larger than the whole budget: not kept
    assert cache.get("y" * 101) is None


@pytest.mark.parametrize(("layout", "value", "message"), [
    # SPEC §11a: change.format and string revisions are short
    ("2" * (MAX_FORMAT + 1), "2", f"layout longer than {MAX_FORMAT}"),
    ("2006", "2" * (MAX_REVISION_STRING + 1), f"value longer than {MAX_REVISION_STRING}"),
])
def test_long_layouts_and_values_are_refused_before_any_work(layout, value, message) -> None:
    with pytest.raises(LayoutError, match=message):
        parse(layout, value)
