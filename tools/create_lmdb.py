"""``python tools/create_lmdb.py --layout NAME --input ROOT --output DIR``: a dataset as shipped -> BasicSR LMDBs.
``python tools/create_lmdb.py --verify PATH [PATH ...]``: read and decode every key of existing LMDBs.

Installed as ``hint-create-lmdb`` too; the command line is :mod:`hint_plugin.cli.create_lmdb`.
"""
import sys

from hint_plugin.cli.create_lmdb import main

if __name__ == '__main__':
    sys.exit(main())
