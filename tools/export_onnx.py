"""``python tools/export_onnx.py --output hint.onnx (--opt TEST_YAML | --weights CKPT [--config NETWORK_YAML])``.

Exports HINT to ONNX with dynamic height and width and checks it against PyTorch with onnxruntime (needs the
``[export]`` extra).

Installed as ``hint-export-onnx`` too; the command line is :mod:`hint_plugin.cli.export_onnx`.
"""
import sys

from hint_plugin.cli.export_onnx import main

if __name__ == '__main__':
    sys.exit(main())
