"""HINT for spandrel: ``import hint_plugin.spandrel`` adds a HINT architecture to spandrel's ``MAIN_REGISTRY``.

    import hint_plugin.spandrel  # noqa: F401
    from spandrel import ModelLoader
    model = ModelLoader().load_from_file('HINT_denoise.safetensors')  # or a .pth
    restored = model(image)  # (1, 3, H, W) in [0, 1], any H and W

``hint_plugin.spandrel.load_from_file(path)`` does the same with the file read by the plugin's loader, which
names an empty or damaged file; spandrel's own loader reports those in its own words (e.g. an ``EOFError``).

The configuration comes from the weights alone (:func:`hint_plugin.utils.detection.detect_hint_config`; any
HINT with attention blocks, as every trained one has). The ``variant`` is not in the weights, so models load as
``official`` (the released checkpoints). The descriptor says:

* purpose ``Restoration``, scale 1, input and output channels from the weights;
* no size requirements: HINT pads any image to a multiple of 8 itself (reflect padding) and crops back, so
  spandrel passes every image through unchanged and the output equals the plugin's;
* ``supports_half`` and ``supports_bfloat16``: measured with ``studies/precision_table.py`` (HINT keeps its token
  norms, correlations and softmax in float32, so both stay finite). On the demo model's held-out photos
  (``make demo``, CPU) bfloat16 is 59.0 dB and float16 65.0 dB from float32 (docs/interop.md). A random,
  untrained network is a poor judge: with ``--same-order --crop 128`` (float32's channel orders replayed)
  bfloat16 is 53.6 dB and float16 72.0 dB, without the replay bfloat16 is 24.5 dB, because rounding flips
  its nearly tied channel ordering.
"""
import torch
from spandrel import MAIN_REGISTRY, Architecture, ArchSupport, ImageModelDescriptor, ModelLoader, SizeRequirements

from hint_plugin.archs.hint_arch import HINT
from hint_plugin.errors import CheckpointError, NonFiniteError, StateDictError
from hint_plugin.utils.checkpoint import check_finite_weights, check_fit, read_state_dict
from hint_plugin.utils.detection import detect_hint_config
from hint_plugin.utils.state_dict import unwrap_state_dict
from hint_plugin.utils.validation import check_probe_output

__all__ = ['HINTArch', 'install', 'load_from_file']

SUPPORTS_HALF = True  # measured, see the module's docstring
SUPPORTS_BFLOAT16 = True
QKCU_KEY = '.attn.intra_modulator.down.weight'  # HINT's own: Restormer's attention blocks have no QKCU


class HINTArch(Architecture[HINT]):
    """spandrel's description of HINT: detected by HINT's own keys, loaded with the detected configuration.

    A state dict with HINT's own key (QKCU's intra-layer cache) is taken for HINT; one that then cannot load
    (a missing key, shapes no HINT has, integer weights, a NaN or an infinity, weights whose output overflows
    on a probe image) raises a
    :class:`~hint_plugin.errors.CheckpointError` saying which key and what was found, rather than being
    reported as an unsupported model.
    """

    def __init__(self):
        super().__init__(id='HINT', name='HINT', detect=self._detect)

    @staticmethod
    def _detect(state_dict):
        return any(QKCU_KEY in key for key in state_dict)

    def load(self, state_dict):
        state_dict = unwrap_state_dict(state_dict)  # spandrel's loader unwraps too; a direct call may not
        try:
            config = detect_hint_config(state_dict)
        except StateDictError as error:
            raise CheckpointError(f'spandrel: a HINT state dict (it holds QKCU weights) that cannot be loaded: '
                                  f'{error}') from None
        with torch.device('meta'):
            expected = HINT(**config).state_dict()
        check_finite_weights('spandrel: the HINT state dict', state_dict)
        check_fit('spandrel: the HINT state dict', expected, state_dict,
                  network='the HINT configuration detected from its tensor shapes', advice=False)
        descriptor = ImageModelDescriptor(
            HINT(**config), state_dict, architecture=self, purpose='Restoration',
            tags=[f'{config["dim"]}dim', 'x'.join(map(str, config['num_blocks'][:3]))],
            supports_half=SUPPORTS_HALF, supports_bfloat16=SUPPORTS_BFLOAT16, scale=1,
            input_channels=config['inp_channels'], output_channels=config['out_channels'],
            size_requirements=SizeRequirements())
        try:
            check_probe_output(descriptor.model, config['inp_channels'], 'spandrel')
        except NonFiniteError as error:
            raise CheckpointError(f'{error}; refusing to load these weights') from None
        return descriptor



def load_from_file(path, device=None):
    """spandrel's ``ModelLoader(device).load_from_file(path)``, with the file read by the plugin's loader
    (:func:`~hint_plugin.utils.checkpoint.read_state_dict`: ``weights_only=True``, and an empty, missing or
    damaged file, integer, NaN or infinite weights named as such in a ``CheckpointError``)."""
    return ModelLoader(device).load_from_state_dict(read_state_dict(path, 'params_ema'))


def install(registry=MAIN_REGISTRY):
    """Add HINT to ``registry`` (spandrel's main one by default), detected before Restormer; idempotent."""
    registry.add(ArchSupport.from_architecture(HINTArch(), before=('Restormer',)), ignore_duplicates=True)


install()
