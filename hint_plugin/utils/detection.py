"""HINT's network configuration read back from a state dict alone (torch, the standard library and the plugin's
errors only: usable where BasicSR is not installed).

:func:`detect_hint_config` returns the keyword arguments of ``HINT`` that rebuild a network into which the
state dict loads with ``strict=True``. What the weights determine, and what they cannot:

=========================  ==============================================================================
``inp_channels``           exactly: ``patch_embed.proj.weight`` is ``(dim, inp_channels, 3, 3)``
``out_channels``           exactly: ``output.weight`` is ``(out_channels, 2 dim, 3, 3)``
``dim``                    exactly (``patch_embed.proj.weight``)
``num_blocks[0:3]``        exactly: the blocks of ``encoder_level1..3`` (checked against the latent and
                           decoder levels, which HINT sizes from the same three numbers)
``num_blocks[3]``          not stored (HINT accepts and ignores it): the released models' 8
``num_refinement_blocks``  exactly (``refinement.N``)
``ffn_expansion_factor``   only as ``int(width * f)``, the FFN hidden width of each level: 2.66 (the released
                           value) when it gives the stored widths, else the shortest decimal that does
``bias``                   exactly (``output.bias`` exists or not); the default when there are no blocks
``LayerNorm_type``         exactly (``norm2.body.bias`` exists or not); ``'WithBias'`` when there are no blocks
``dual_pixel_task``        exactly (``skip_conv.weight``)
``head_ratios``            exactly as sizes, returned in lowest terms (1:2:2:3 for released models); the
                           default when there is no attention block
``heads``                  not stored (HINT ignores it): left at its default
``variant``                not stored: ``official`` and ``refined`` have identical parameters and differ
                           only in how the forward pass uses them, so it is never returned
``cache_momentum``         not stored: left at its default
=========================  ==============================================================================

A dict that is not HINT's raises :class:`~hint_plugin.errors.NotHINTStateDictError` (a ``HINTError`` and a
``ValueError``) naming the first missing key or inconsistency, never an exception from inside the network. The
state dict is found inside a checkpoint by :func:`hint_plugin.utils.state_dict.unwrap_state_dict`.
"""
import math
import re

from hint_plugin.errors import NotHINTStateDictError
from hint_plugin.utils.state_dict import unwrap_state_dict

DEFAULT_FFN_EXPANSION_FACTOR = 2.66
DEFAULT_HEAD_RATIOS = (1, 2, 2, 3)
UNSTORED_LAST_NUM_BLOCKS = 8  # num_blocks[3] of the released configuration; HINT ignores it

# level name -> (width as a multiple of dim, whether its blocks have attention)
LEVELS = {
    'encoder_level1': (1, False),
    'encoder_level2': (2, False),
    'encoder_level3': (4, False),
    'latent': (8, True),
    'decoder_level3': (4, True),
    'decoder_level2': (2, True),
    'decoder_level1': (2, True),
    'refinement': (2, True),
}
# levels whose block count HINT takes from num_blocks[i] (the same i as encoder_level{i + 1})
SAME_COUNT_AS = {'latent': 'encoder_level2', 'decoder_level3': 'encoder_level3',
                 'decoder_level2': 'encoder_level2', 'decoder_level1': 'encoder_level1'}
RESAMPLING_KEYS = ('down1_2.body.0.weight', 'down2_3.body.0.weight', 'down3_4.body.0.weight',
                   'up4_3.body.0.weight', 'up3_2.body.0.weight', 'up2_1.body.0.weight',
                   'reduce_chan_level3.weight', 'reduce_chan_level2.weight')
def _tensor(state, key, dims, why):
    """``state[key]``, which must exist and have ``dims`` dimensions; ``why`` says what the key is."""
    if key not in state:
        raise NotHINTStateDictError(f'not a HINT state dict: missing {key!r} ({why})')
    value = state[key]
    if value.dim() != dims:
        raise NotHINTStateDictError(f'not a HINT state dict: {key!r} ({why}) has shape {tuple(value.shape)}, '
                                    f'expected {dims} dimensions')
    return value


def _block_count(state, level):
    """How many blocks ``level.0 .. level.N-1`` the state dict holds; gaps are an error."""
    pattern = re.compile(rf'{re.escape(level)}\.(\d+)\.')
    indices = {int(match.group(1)) for match in map(pattern.match, state) if match}
    if indices != set(range(len(indices))):
        raise NotHINTStateDictError(f'not a HINT state dict: the blocks of {level} are numbered '
                                    f'{sorted(indices)}, expected 0 to {len(indices) - 1}')
    return len(indices)


def _check_block(state, prefix, width, attention):
    """The FFN hidden width of block ``prefix`` of ``width`` channels, after checking its layout."""
    hidden = _tensor(state, f'{prefix}.ffn.project_out.weight', 4, 'the FFN output convolution').shape[1]
    ffn_in = _tensor(state, f'{prefix}.ffn.project_in.weight', 4, 'the FFN input convolution')
    if tuple(ffn_in.shape[:2]) != (2 * hidden, width):
        raise NotHINTStateDictError(f'not a HINT state dict: {prefix}.ffn.project_in.weight has shape '
                                    f'{tuple(ffn_in.shape)}, expected ({2 * hidden}, {width}, 1, 1)')
    has_attention = any(key.startswith(f'{prefix}.attn.') for key in state)
    if has_attention != attention:
        raise NotHINTStateDictError(
            f'not a HINT state dict: {prefix} {"has no" if attention else "has"} attention weights, but HINT\'s '
            f'{"decoder, latent and refinement" if attention else "encoder"} blocks '
            f'{"have" if attention else "have none"}')
    if attention:
        _tensor(state, f'{prefix}.attn.intra_modulator.down.weight', 3, "QKCU's intra-layer cache")
    return hidden


def _head_ratios(state, prefix):
    """The head sizes of the attention block ``prefix`` in lowest terms, checked against its temperature."""
    heads = _tensor(state, f'{prefix}.attn.temperature', 3, 'the per-head attention temperature').shape[0]
    sizes = [_tensor(state, f'{prefix}.attn.inter_modulator{i}.gatingConv.weight', 3,
                     f"QKCU's inter-layer cache of head {i}").shape[0] for i in range(1, heads + 1)]
    divisor = math.gcd(*sizes)
    return tuple(size // divisor for size in sizes)


def _expansion_factor(hidden_widths):
    """An ``f`` with ``int(width * f) == hidden`` for every ``(width, hidden)``: 2.66 if it fits, else the
    shortest decimal in the interval the widths allow."""
    def fits(factor):
        return all(int(width * factor) == hidden for width, hidden in hidden_widths)

    if not hidden_widths or fits(DEFAULT_FFN_EXPANSION_FACTOR):
        return DEFAULT_FFN_EXPANSION_FACTOR
    low = max(hidden / width for width, hidden in hidden_widths)
    high = min((hidden + 1) / width for width, hidden in hidden_widths)
    for digits in range(16):
        scale = 10**digits
        start = math.ceil(low * scale)
        for candidate in (start / scale, (start + 1) / scale):  # float rounding may put the first just outside
            if candidate < high and fits(candidate):
                return candidate
    widths = ', '.join(f'{hidden} at width {width}' for width, hidden in sorted(hidden_widths))
    raise NotHINTStateDictError(f'not a HINT state dict: no ffn_expansion_factor gives the FFN hidden widths '
                                f'({widths}) as int(width * factor)')


def detect_hint_config(state_dict):
    """The ``HINT`` keyword arguments that rebuild the network of ``state_dict`` (see the module's table).

    Args:
        state_dict (Mapping[str, Tensor]): bare, or under ``params_ema`` / ``params``, with or without a DDP
            ``module.`` prefix (:func:`~hint_plugin.utils.state_dict.unwrap_state_dict`).

    Returns:
        dict: ``inp_channels``, ``out_channels``, ``dim``, ``num_blocks`` (list of 4), ``num_refinement_blocks``,
        ``ffn_expansion_factor``, ``bias``, ``LayerNorm_type``, ``dual_pixel_task``, ``head_ratios`` (tuple).

    Raises:
        NotHINTStateDictError: the dict is not HINT's (the message names the missing key or inconsistency).
        StateDictError: ``state_dict`` is no state dict of tensors at all (the base of NotHINTStateDictError).
    """
    state = unwrap_state_dict(state_dict)
    embed = _tensor(state, 'patch_embed.proj.weight', 4, 'the input convolution')
    dim, inp_channels = embed.shape[:2]
    output = _tensor(state, 'output.weight', 4, 'the output convolution')
    if output.shape[1] != 2 * dim:
        raise NotHINTStateDictError(f'not a HINT state dict: output.weight takes {output.shape[1]} channels, '
                                    f'expected 2 x dim = {2 * dim} (dim {dim} from patch_embed.proj.weight)')
    if dim % 4:
        raise NotHINTStateDictError(f'not a HINT state dict: dim {dim} (patch_embed.proj.weight) is not a '
                                    'multiple of 4')
    for key in RESAMPLING_KEYS:
        _tensor(state, key, 4, 'a resampling or channel-reduction convolution')

    counts = {level: _block_count(state, level) for level in LEVELS}
    for level, source in SAME_COUNT_AS.items():
        if counts[level] != counts[source]:
            raise NotHINTStateDictError(f'not a HINT state dict: {level} has {counts[level]} blocks and {source} '
                                        f'{counts[source]}; HINT gives both the same number')

    hidden_widths, first_block, first_attention, head_ratios = set(), None, None, DEFAULT_HEAD_RATIOS
    for level, (multiple, attention) in LEVELS.items():
        for index in range(counts[level]):
            prefix = f'{level}.{index}'
            hidden_widths.add((multiple * dim, _check_block(state, prefix, multiple * dim, attention)))
            first_block = first_block or prefix
            if attention and index == 0:
                ratios = _head_ratios(state, prefix)
                if first_attention is None:
                    first_attention, head_ratios = prefix, ratios
                elif ratios != head_ratios:
                    raise NotHINTStateDictError(f'not a HINT state dict: the heads of {prefix} are in the ratios '
                                                f'{ratios}, those of {first_attention} in {head_ratios}')

    config = dict(
        inp_channels=inp_channels,
        out_channels=output.shape[0],
        dim=dim,
        num_blocks=[counts['encoder_level1'], counts['encoder_level2'], counts['encoder_level3'],
                    UNSTORED_LAST_NUM_BLOCKS],
        num_refinement_blocks=counts['refinement'],
        ffn_expansion_factor=_expansion_factor(sorted(hidden_widths)),
        bias='output.bias' in state,
        LayerNorm_type='WithBias',
        dual_pixel_task='skip_conv.weight' in state,
        head_ratios=head_ratios,
    )
    if first_block is not None:
        _tensor(state, f'{first_block}.norm2.body.weight', 1, 'a LayerNorm')
        config['LayerNorm_type'] = 'WithBias' if f'{first_block}.norm2.body.bias' in state else 'BiasFree'
    if not config['dual_pixel_task'] and config['out_channels'] != inp_channels:
        raise NotHINTStateDictError(f'not a HINT state dict: {inp_channels} input and {config["out_channels"]} '
                                    'output channels without skip_conv (dual-pixel models only)')
    return config


def hint_network_options(state_dict):
    """``{'type': 'HINT', **detected}``: HINT's ``network_g`` for ``state_dict``, JSON-ready (lists, no tuples)."""
    config = detect_hint_config(state_dict)
    return {'type': 'HINT', **{key: list(value) if isinstance(value, tuple) else value
                               for key, value in config.items()}}
