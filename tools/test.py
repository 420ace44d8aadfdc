"""``python tools/test.py -opt options/test/X.yml``: BasicSR's test pipeline with HINT.

Results and logs land in the working directory's ``results/<name>/``. The same command is installed as
``hint-test``; the plugin's fixes and checks come first (:mod:`hint_plugin.cli.pipeline`).
"""
from hint_plugin.cli.pipeline import test_main

if __name__ == '__main__':
    test_main()
