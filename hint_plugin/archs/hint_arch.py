"""HINT ("Devil is in the Uniformity", ICCV 2025, arXiv 2503.20174), Restormer's U-shape: encoder levels 1-3
(FFN-only blocks), latent, decoder levels 3-1 with skips, refinement; their attention blocks pass the
inter-layer cache on."""
from numbers import Real

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from hint_plugin.archs.hmha_arch import HMHA
from hint_plugin.archs.layers import ChannelLayerNorm, Downsample, GatedDconvFeedForward, PatchEmbed, Upsample
from hint_plugin.archs.padding import PAD_MULTIPLE, pad_to_multiple
from hint_plugin.archs.qkcu_arch import (DEFAULT_CACHE_MOMENTUM, DEFAULT_HEAD_RATIOS, CarriesCache, head_sizes,
                                         resolve_cache_init, resolve_cache_rounding)
from hint_plugin.errors import OptionsError, check_bool, check_choice, check_int, check_int_list

RECOMPUTE_MIN_TOKENS = 128 * 128  # fast, training: the cheap stretches recomputed on maps this large


class TransformerBlock(nn.Module):
    """``x + HMHA(norm1(x))`` (given ``attention``: HMHA's keywords), ``x + FFN(norm2(x))``; ``-> (x, cache)``."""

    def __init__(self, dim, ffn_expansion_factor, bias, layer_norm_type, fast, recompute_min_tokens, attention):
        super().__init__()
        self.attn = None
        if attention:
            self.norm1 = ChannelLayerNorm(dim, layer_norm_type)
            self.attn = HMHA(dim, bias=bias, fast=fast, recompute_min_tokens=recompute_min_tokens, **attention)
        self.norm2 = ChannelLayerNorm(dim, layer_norm_type)
        self.ffn = GatedDconvFeedForward(dim, ffn_expansion_factor, bias, fast, recompute_min_tokens)

    def forward(self, x, cache=None):
        if self.attn is not None:
            attended, cache = self.attn(x, cache, norm=self.norm1)
            x = x + attended
        return x + self.ffn(x, norm=self.norm2), cache


class HINT(CarriesCache, nn.Module):
    """``(B, inp_channels, H, W) -> (B, out_channels, H, W)``, ``network_g``'s keywords (docs/architecture.md);
    ``fast``: the speed devices of :mod:`~hint_plugin.archs.ops` (``False``: the plain path)."""

    def __init__(self, inp_channels=3, out_channels=3, dim=48, num_blocks=(4, 6, 6, 8), num_refinement_blocks=4,
                 heads=(1, 2, 4, 8), ffn_expansion_factor=2.66, bias=False, LayerNorm_type='WithBias',
                 dual_pixel_task=False, variant='official', head_ratios=DEFAULT_HEAD_RATIOS,
                 cache_momentum=DEFAULT_CACHE_MOMENTUM, cache_rounding=None, cache_init=None, use_checkpoint=False,
                 channels_last=True, fast=True, recompute_min_tokens=RECOMPUTE_MIN_TOKENS):
        super().__init__()
        for name, value, least in (('inp_channels', inp_channels, 1), ('out_channels', out_channels, 1),
                                   ('dim', dim, 4), ('num_refinement_blocks', num_refinement_blocks, 0),
                                   ('recompute_min_tokens', recompute_min_tokens, 0)):
            check_int(name, value, least)
        if dim % 4:
            raise OptionsError(f'dim must be a multiple of 4 (attention splits 2 x dim in eighths), got {dim}')
        check_int_list('num_blocks', num_blocks, 4, 0)
        check_int_list('heads', heads, 4, 0)
        if isinstance(ffn_expansion_factor, bool) or not isinstance(ffn_expansion_factor, Real) \
                or int(dim * ffn_expansion_factor) < 1:
            raise OptionsError(f'ffn_expansion_factor must be a positive number, got {ffn_expansion_factor!r}')
        for name, value in (('bias', bias), ('dual_pixel_task', dual_pixel_task), ('use_checkpoint', use_checkpoint),
                            ('channels_last', channels_last), ('fast', fast)):
            check_bool(name, value)
        check_choice('LayerNorm_type', LayerNorm_type, ('WithBias', 'BiasFree'))
        cache_rounding = resolve_cache_rounding(variant, cache_rounding)
        self.cache_init = resolve_cache_init(variant, cache_init)
        head_sizes(2 * dim, head_ratios)  # the narrowest level: the wider split alike
        if not dual_pixel_task and inp_channels != out_channels:
            raise OptionsError(f'out_channels ({out_channels}) must equal inp_channels ({inp_channels}) (the input '
                               'is added to the output) unless dual_pixel_task')
        self.inp_channels, self.dim, self.dual_pixel_task = inp_channels, dim, dual_pixel_task
        self.use_checkpoint = use_checkpoint
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        recompute = None if use_checkpoint else recompute_min_tokens  # a checkpointed block recomputes everything
        attention = dict(head_ratios=head_ratios, cache_momentum=cache_momentum, variant=variant,
                         cache_rounding=cache_rounding, cache_init='none')

        def level(width, count, attention=None):
            return nn.ModuleList(TransformerBlock(width, ffn_expansion_factor, bias, LayerNorm_type, fast, recompute,
                                                  attention) for _ in range(count))

        self.patch_embed = PatchEmbed(inp_channels, dim)
        self.encoder_level1 = level(dim, num_blocks[0])
        self.down1_2 = Downsample(dim)
        self.encoder_level2 = level(dim * 2, num_blocks[1])
        self.down2_3 = Downsample(dim * 2)
        self.encoder_level3 = level(dim * 4, num_blocks[2])
        self.down3_4 = Downsample(dim * 4)
        self.latent = level(dim * 8, num_blocks[1], attention)
        self.up4_3 = Upsample(dim * 8)
        self.reduce_chan_level3 = nn.Conv2d(dim * 8, dim * 4, kernel_size=1, bias=bias)
        self.decoder_level3 = level(dim * 4, num_blocks[2], attention)
        self.up3_2 = Upsample(dim * 4)
        self.reduce_chan_level2 = nn.Conv2d(dim * 4, dim * 2, kernel_size=1, bias=bias)
        self.decoder_level2 = level(dim * 2, num_blocks[1], attention)
        self.up2_1 = Upsample(dim * 2)
        self.decoder_level1 = level(dim * 2, num_blocks[0], attention)
        self.refinement = level(dim * 2, num_refinement_blocks, attention)
        if dual_pixel_task:
            self.skip_conv = nn.Conv2d(dim, dim * 2, kernel_size=1, bias=bias)
        self.output = nn.Conv2d(dim * 2, out_channels, kernel_size=3, padding=1, bias=bias)

    @property
    def has_unused_parameters(self):
        """Whether the first attention block's modulators may get no gradient (no cache), for DDP."""
        return self.cache_init != 'zeros'

    def _run(self, blocks, x, cache):
        for block in blocks:
            if self.use_checkpoint and self.training and torch.is_grad_enabled():
                x, cache = checkpoint(block, x, cache, use_reentrant=False)
            else:
                x, cache = block(x, cache)
        return x, cache

    def forward(self, x):
        if x.dim() != 4 or x.shape[1] != self.inp_channels:
            raise ValueError(f'HINT expects a (B, {self.inp_channels}, H, W) tensor, got shape {tuple(x.shape)}')
        height, width = x.shape[-2:]
        image = pad_to_multiple(x, PAD_MULTIPLE).contiguous(memory_format=self.memory_format)

        embedded = self.patch_embed(image)
        enc1, _ = self._run(self.encoder_level1, embedded, None)
        enc2, _ = self._run(self.encoder_level2, self.down1_2(enc1), None)
        enc3, _ = self._run(self.encoder_level3, self.down2_3(enc2), None)
        latent, cache = self._run(self.latent, self.down3_4(enc3), self.start_cache(image, 2 * self.dim))

        dec3 = self.reduce_chan_level3(torch.cat([self.up4_3(latent), enc3], dim=1))
        dec3, cache = self._run(self.decoder_level3, dec3, cache)
        dec2 = self.reduce_chan_level2(torch.cat([self.up3_2(dec3), enc2], dim=1))
        dec2, cache = self._run(self.decoder_level2, dec2, cache)
        dec1 = torch.cat([self.up2_1(dec2), enc1], dim=1)
        dec1, cache = self._run(self.decoder_level1, dec1, cache)
        refined, cache = self._run(self.refinement, dec1, cache)
        self.keep_cache(cache)

        if self.dual_pixel_task:
            out = self.output(refined + self.skip_conv(embedded))
        else:
            out = self.output(refined) + image
        return out[..., :height, :width].contiguous()
