"""Error messages that name a few of many things."""

MAX_LISTED = 5  # names shown in a message; the count covers the rest


def listing(names, noun, limit=MAX_LISTED):
    """``"3 files (a, b, c)"``: how many ``noun`` there are, and the first ``limit`` names, sorted."""
    names = sorted(str(name) for name in names)
    shown = ', '.join(names[:limit]) + (', ...' if len(names) > limit else '')
    return f'{len(names)} {noun}{"s" if len(names) != 1 else ""} ({shown})'
