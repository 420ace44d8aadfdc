"""The command-line scripts (``python tools/NAME.py --help``); a package only so that scripts and tests can import
each other's helpers (``from tools.inference import add_network_arguments``). Not installed with the plugin."""
