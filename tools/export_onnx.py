"""``python tools/export_onnx.py --output hint.onnx (--opt TEST_YAML | --weights CKPT [--config NETWORK_YAML])``.

Exports HINT to ONNX with dynamic height and width and checks it against PyTorch with onnxruntime (``--check H W``,
repeatable). Needs the ``[export]`` extra; see ``--help`` and :mod:`hint_plugin.export` for the opset and limits.
"""
import sys
from os import path as osp

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

from hint_plugin.export import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
