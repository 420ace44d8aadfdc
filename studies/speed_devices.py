"""Time HINT's speed devices against the plain expressions they replace (the figures in hint_plugin/archs/ops.py,
hint_plugin/utils/optimizers.py and docs/benchmarks.md).

    python studies/speed_devices.py               # PyTorch's default threads
    python studies/speed_devices.py --threads 1

Each line: the median of --repeat timed calls (after --warmup untimed ones, default 3) of the device and of each
alternative, in milliseconds, all in this process with the allocator setting of the entry points.
"""
import argparse
import statistics
import time

import torch
from torch.nn import functional as F

from hint_plugin.archs.hint_arch import HINT
from hint_plugin.archs.hmha_arch import channel_correlation, mean_channel_correlation
from hint_plugin.archs.ops import channel_mix
from hint_plugin.archs.qkcu_arch import gather_channels
from hint_plugin.utils.allocator import retain_freed_memory


def median_ms(function, repeat, warmup=3):
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def report(title, repeat, warmup, **alternatives):
    timings = {name: median_ms(function, repeat, warmup) for name, function in alternatives.items()}
    print(f'{title}: ' + ', '.join(f'{name} {ms:.2f} ms' for name, ms in timings.items()))


# HINT's levels and their map sides at a 128x128 training patch
LEVELS = (('encoder_level1', 128), ('encoder_level2', 64), ('encoder_level3', 32), ('latent', 16),
          ('decoder_level3', 32), ('decoder_level2', 64), ('decoder_level1', 128))


def kept_megabytes(function):
    """The tensors autograd keeps for the backward pass of ``function()`` (each storage once), in MB."""
    storages = {}

    def pack(tensor):
        storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        function()
    return sum(storages.values()) / 2**20


def recomputation_by_level(repeat, warmup):
    """The first block of each level of the default HINT, forward + backward, its stretches recomputed and kept."""
    nets = {True: HINT(recompute_min_tokens=0), False: HINT(recompute_min_tokens=10**9)}
    nets[False].load_state_dict(nets[True].state_dict())
    for name, side in LEVELS:
        blocks = {recompute: getattr(net, name)[0] for recompute, net in nets.items()}
        channels = blocks[True].ffn.project_in.in_channels
        x = torch.randn(1, channels, side, side).contiguous(memory_format=torch.channels_last).requires_grad_()
        grad = torch.randn_like(x)
        cache = None if blocks[True].attn is None else torch.zeros(1, channels, channels)
        kept = {recompute: kept_megabytes(lambda block=block: block(x, cache)) for recompute, block in blocks.items()}
        report(f'recomputation, {name} ({channels} x {side}x{side}), block forward + backward', repeat, warmup,
               recompute=lambda: blocks[True](x, cache)[0].backward(grad),
               plain=lambda: blocks[False](x, cache)[0].backward(grad))
        print(f'  kept for the backward pass: {kept[True]:.1f} MB recomputing, {kept[False]:.1f} MB plain')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--threads', type=int, help="torch CPU threads (default: PyTorch's)")
    parser.add_argument('--repeat', type=int, default=15, help='timed calls of each function (default: 15)')
    parser.add_argument('--warmup', type=int, default=3,
                        help='untimed calls of each function before those (default: 3; 0: none, for a quick check)')
    args = parser.parse_args(argv)
    retain_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads')
    torch.manual_seed(0)

    conv = torch.nn.Conv1d(96, 96, kernel_size=1)
    tokens = torch.randn(1, 16384, 96, requires_grad=True)
    grad = torch.randn(1, 16384, 96)
    report('channel_mix, 16384 x 96 tokens, forward + backward', args.repeat, args.warmup,
           device=lambda: channel_mix(conv, tokens).backward(grad),
           linear=lambda: F.linear(tokens, conv.weight.squeeze(-1), conv.bias).backward(grad),
           conv1d=lambda: conv(tokens.transpose(1, 2)).transpose(1, 2).backward(grad))

    for count, channels in ((16384, 96), (4096, 192)):
        x = torch.randn(1, count, channels)
        report(f'mean channel correlation, {count} x {channels}', args.repeat, args.warmup,
               device=lambda x=x: mean_channel_correlation(x),
               matrix=lambda x=x: channel_correlation(x).mean(dim=2))

    x = torch.randn(1, 16384, 288)
    order = torch.randperm(288)[None]
    report('channel re-ordering, 16384 x 288', args.repeat, args.warmup, gather=lambda: gather_channels(x, order),
           index_select=lambda: torch.index_select(x, -1, order[0]), indexing=lambda: x[..., order[0]])

    recomputation_by_level(args.repeat, args.warmup)

    parameters = list(HINT().parameters())
    for parameter in parameters:
        parameter.grad = torch.randn_like(parameter)
    optimizers = {name: torch.optim.AdamW(parameters, lr=1e-4, **keywords) for name, keywords in
                  (('fused', {'fused': True}), ('loop', {'foreach': False}), ('foreach', {'foreach': True}))}
    report(f'AdamW step, {sum(p.numel() for p in parameters) / 1e6:.1f} M parameters', args.repeat, args.warmup,
           **{name: optimizer.step for name, optimizer in optimizers.items()})


if __name__ == '__main__':
    main()
