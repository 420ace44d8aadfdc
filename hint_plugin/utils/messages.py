"""Error messages that name a few of many things, or the one meant."""
import difflib

MAX_LISTED = 5  # names shown in a message; the count covers the rest


def listing(names, noun, limit=MAX_LISTED):
    """``"3 files (a, b, c)"``: how many ``noun`` there are, and the first ``limit`` names, sorted."""
    names = sorted(str(name) for name in names)
    shown = ', '.join(names[:limit]) + (', ...' if len(names) > limit else '')
    return f'{len(names)} {noun}{"s" if len(names) != 1 else ""} ({shown})'


def did_you_mean(name, known, listed=None):
    """``"did you mean `total_iter`?"`` when one of ``known`` is close to ``name`` (difflib's ratio >= 0.6),
    else ``"expected one of: a, b, c"`` listing ``listed`` (default: ``known`` in its order)."""
    close = difflib.get_close_matches(str(name), [str(key) for key in known], n=1, cutoff=0.6)
    if close:
        return f'did you mean `{close[0]}`?'
    return f'expected one of: {", ".join(str(key) for key in (known if listed is None else listed))}'
