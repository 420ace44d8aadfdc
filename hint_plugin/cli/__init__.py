"""The command lines: the one part of the package that parses arguments and prints.

Each module's ``main`` is installed as a console script (``pyproject.toml``) and run by a script of the same
name in a checkout's ``tools/``: ``hint-train`` and ``hint-test`` (:mod:`.pipeline`, ``tools/train.py`` and
``tools/test.py``), ``hint-infer`` (:mod:`.inference`), ``hint-export-onnx`` (:mod:`.export_onnx`),
``hint-convert-weights`` (:mod:`.convert_weights`), ``hint-complexity`` (:mod:`.complexity`) and
``hint-create-lmdb`` (:mod:`.create_lmdb`). The work itself is done by the library modules they import; nothing
else in the package imports this one.
"""
import re


def plain_text(docstring):
    """A module docstring as ``--help`` prints it: Sphinx roles and double backquotes dropped, the words kept."""
    return re.sub(r':[a-z]+:`~?\.?([^`]+)`', r'\1', docstring).replace('``', '')
