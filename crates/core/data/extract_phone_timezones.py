#!/usr/bin/env python3
"""Extract libphonenumber's prefix -> time zone map into phone_timezones.tsv.

Source: the `tzdata` modules of the PyPI `phonenumbers` package (python-phonenumbers,
a port of Google's libphonenumber, Apache-2.0). Usage:

    pip download --no-deps phonenumbers==VERSION -d /tmp/pn
    cd /tmp/pn && unzip -q -o phonenumbers-*.whl -d x
    python3 extract_phone_timezones.py /tmp/pn/x > phone_timezones.tsv

Output: one line per prefix, sorted, `prefix<TAB>zone`, where prefix is the E.164 digits
(country code first, no `+`). A prefix that maps to exactly one zone carries that zone. A
prefix that maps to several zones is written with zone `-` only when it shadows a shorter
single-zone prefix (so that a longest-prefix match over the file still says "ambiguous"
where libphonenumber would); other multi-zone prefixes are left out, since a miss already
means "no single zone".
"""
import sys


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: extract_phone_timezones.py UNPACKED_WHEEL_DIR")
    sys.path.insert(0, sys.argv[1])
    import phonenumbers
    from phonenumbers.tzdata import TIMEZONE_DATA

    single = {k: v[0] for k, v in TIMEZONE_DATA.items() if len(v) == 1}
    rows = dict(single)
    for prefix, zones in TIMEZONE_DATA.items():
        if len(zones) > 1 and any(prefix[:i] in single for i in range(1, len(prefix))):
            rows[prefix] = "-"
    out = sys.stdout
    out.write(f"# libphonenumber time zones via python-phonenumbers {phonenumbers.__version__}"
              " (Apache-2.0); see README.md\n")
    for prefix in sorted(rows):
        out.write(f"{prefix}\t{rows[prefix]}\n")


if __name__ == "__main__":
    main()
