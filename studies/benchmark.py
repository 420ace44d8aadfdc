"""Time HINT's training steps and inference, with peak memory; prints a Markdown table (and JSON with --json).

    python studies/benchmark.py                                   # default HINT: train 128x128, infer 256x256
    python studies/benchmark.py --mode train --train-size 384 384 --use-checkpoint
    python studies/benchmark.py --device cuda --dtype bf16 --compile --json gpu.json
    python studies/benchmark.py --mode train --reference ../HINT --rounds 3   # against the authors' code
    python studies/benchmark.py --revision 22ff68d --rounds 2                 # against another commit

With --reference (the authors' HINT_arch.py itself, or the root of a checkout of their repository) or --revision
(a git revision of this repository, exported to a temporary folder), that network is measured too, by this
version's timing code with the same allocator setting, alternating with this tree's round by round (ABBA order);
the summary gives this tree's time and peak memory as a ratio of the other's. The reference takes only the
network_g keys its own HINT() accepts (the ones it does not take are listed), and --variant, --use-checkpoint
and --no-channels-last apply to this tree only.

A training step is forward + L1 loss + backward + AdamW step on random data; AdamW is built as each code's
training builds it (--adamw own: fused for this package, PyTorch's per-parameter loop for the reference), or the
same for both (--adamw loop | fused). Inference is one forward pass under torch.inference_mode. Each
measurement runs in a fresh process: --warmup untimed steps, then the median of --repeat timed ones (and the
fastest, the better estimate on a machine whose cores are shared), and the process's own peak resident memory
(Linux VmHWM) or the peak CUDA allocation. It also counts the floating-point operations of a step
(convolutions and matrix products, by torch.utils.flop_counter; a training step counts as 3 forward passes) and
times fp32 2048 x 2048 matrix products in the same process: the table gives the achieved GFLOP/s and its share
of that matmul peak (--no-matmul-peak skips that timing, about 1.5 s per measurement on one CPU thread, and the
share with it). With --profile N, one more step runs under torch.profiler and its N costliest operators
(self time) are listed.
"""
import argparse
import importlib.util
import json
import multiprocessing
import os
import platform
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from contextlib import nullcontext
from os import path as osp
from pathlib import Path

import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

REFERENCE_IMPORTS = ('einops', 'sklearn')  # what the authors' HINT_arch.py imports beyond torch
DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp64': torch.float64}
CONVOLUTION_OPS = ('convolution', 'conv2d', 'mkldnn_convolution', 'cudnn_convolution', 'convolution_backward')


def _profile(step, device, top):
    """Self time per operator of one ``step``: ``(top operators [(name, seconds)], convolution share, total s)``."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == 'cuda' else [])
    with profile(activities=activities) as prof:
        step()
        _synchronize(device)
    attribute = 'self_device_time_total' if device.type == 'cuda' else 'self_cpu_time_total'
    times = {event.key: getattr(event, attribute) / 1e6 for event in prof.key_averages()
             if event.key.startswith('aten::')}
    total = sum(times.values())
    convolution = sum(t for name, t in times.items() if name.removeprefix('aten::') in CONVOLUTION_OPS)
    ranked = sorted(times.items(), key=lambda item: -item[1])[:top]
    return ranked, convolution / total if total else 0.0, total


def _count_flops(forward):
    """Floating-point operations of one ``forward()`` (2 per multiply-add of convolutions and matrix products).

    Counted by ``torch.utils.flop_counter`` without autograd: its count of a depthwise convolution's backward
    pass is that of a dense one (torch 2.14), so a training step is taken as 3 forward passes, the usual
    convention (the backward pass computes gradients of inputs and of weights, each as costly as the forward).
    """
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        forward()
    return counter.get_total_flops()


def _matmul_peak(device, repeat=5, size=2048):
    """The best GFLOP/s of ``size x size`` fp32 matrix products on ``device``: this machine's practical peak."""
    a, b = (torch.randn(size, size, device=device) for _ in range(2))
    best = float('inf')
    for _ in range(repeat + 1):
        _synchronize(device)
        start = time.perf_counter()
        a @ b
        _synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def _peak_rss_gb():
    """This process's peak resident memory: Linux's ``VmHWM``, which starts afresh with the process image.

    (``getrusage``'s ``ru_maxrss``, the fallback elsewhere, survives ``exec``: a measuring process would start
    from the peak of the process that launched it.)
    """
    try:
        with open('/proc/self/status', encoding='ascii') as status:
            return next(int(line.split()[1]) for line in status if line.startswith('VmHWM:')) * 1024 / 1e9
    except (OSError, StopIteration, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def _load_by_path(name, path):
    """Import the module file ``path`` as ``name`` without putting its package on the path."""
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return module


def _network_overrides(spec):
    """The ``network_g`` keys the spec sets (those left ``None`` keep the option file's or HINT's defaults)."""
    return {key: spec[key] for key in ('variant', 'use_checkpoint', 'channels_last') if spec.get(key) is not None}


def reference_file(path):
    """The authors' ``HINT_arch.py``: ``path`` itself, or where it lies in a checkout of their repository."""
    path = Path(path)
    if path.is_dir():
        path = path / 'basicsr' / 'models' / 'archs' / 'HINT_arch.py'
    if path.is_file() and path.suffix != '.py':
        raise ValueError(f'{path} is not a Python file: --reference takes the authors\' HINT_arch.py or the root '
                         'of a checkout of their repository (joshyZhou/HINT)')
    if not path.is_file():
        raise ValueError(f'{path} does not exist: --reference takes the authors\' HINT_arch.py or the root of a '
                         'checkout of their repository (joshyZhou/HINT)')
    return path.resolve()


def load_reference(path):
    """The module of the authors' ``HINT_arch.py`` at ``path``; a missing import names what installs it."""
    try:
        module = _load_by_path('_hint_reference_arch', path)
    except ModuleNotFoundError as error:
        advice = (f'pip install -r {Path(REPO) / "requirements" / "reference.txt"}'
                  if error.name.split('.')[0] in REFERENCE_IMPORTS else 'is it the authors\' HINT_arch.py?')
        raise ModuleNotFoundError(f'{path} imports {error.name!r}, which is not installed: {advice}',
                                  name=error.name) from error
    if not isinstance(getattr(module, 'HINT', None), type):
        raise ValueError(f'{path} defines no HINT class: --reference takes the authors\' HINT_arch.py')
    return module


def _build_reference(spec):
    """The authors' ``HINT`` from ``spec['reference']`` with the keys of ``opt``'s ``network_g`` it accepts.

    Their file imports einops and scikit-learn at the top (``requirements/reference.txt``).
    """
    import inspect

    module = load_reference(spec['reference'])
    network = _network_keys(spec)
    accepted = inspect.signature(module.HINT).parameters
    spec['dropped_keys'] = [key for key in network if key not in accepted]
    return module.HINT(**{key: value for key, value in network.items() if key in accepted})


def _network_keys(spec):
    """The keyword arguments of ``opt``'s ``network_g`` (without ``type``); none without ``opt``."""
    import yaml

    if not spec.get('opt'):
        return {}
    with open(spec['opt'], encoding='utf-8') as file:
        network = dict(yaml.safe_load(file)['network_g'])
    network.pop('type', None)
    return network


def _build(spec):
    if spec.get('reference'):
        return _build_reference(spec)
    if spec.get('source'):
        return _build_from_source(spec)
    import hint_plugin  # noqa: F401  (spawned processes start bare)
    from hint_plugin.utils.options import network_from_options
    return network_from_options(spec.get('opt'), **_network_overrides(spec))


def _build_from_source(spec):
    """``HINT`` of the package version first on the path (``spec['source']``), from ``opt``'s ``network_g``.

    Only plain keyword arguments are passed (the YAML's ``network_g`` without ``type``, then the non-None
    overrides), so any version of the package builds the same network.
    """
    from hint_plugin.archs.hint_arch import HINT

    return HINT(**_network_keys(spec), **_network_overrides(spec))


def _retain_freed_memory(spec):
    """:func:`hint_plugin.utils.allocator.retain_freed_memory` of this version, unless ``system_malloc``.

    Loaded by file path so that it applies in the same way when another version of the package is measured.
    """
    if spec.get('system_malloc'):
        return False
    allocator = _load_by_path('_hint_benchmark_allocator', Path(REPO) / 'hint_plugin' / 'utils' / 'allocator.py')
    return allocator.retain_freed_memory()


def _built_settings(net):
    """The variant, ``use_checkpoint`` and channels-last setting ``net`` was built with (this package's HINT)."""
    if not hasattr(net, 'use_checkpoint'):  # the reference
        return {}
    from hint_plugin.archs.qkcu_arch import VARIANTS

    rule = next((module.rule for module in net.modules() if hasattr(module, 'rule')), None)
    return {'built_variant': next((name for name, known in VARIANTS.items() if known == rule), '-'),
            'built_use_checkpoint': bool(net.use_checkpoint),
            'built_channels_last': getattr(net, 'memory_format', None) == torch.channels_last}


def _optimizer(spec, net):
    """AdamW as a training run of the measured code builds it: the plugin's choice of implementation
    (:mod:`hint_plugin.utils.optimizers`, where that version has it), PyTorch's default for the reference."""
    if spec.get('adamw') in ('loop', 'fused'):
        return torch.optim.AdamW(net.parameters(), lr=1e-4, foreach=False, fused=spec['adamw'] == 'fused')
    if not spec.get('reference'):
        try:
            from hint_plugin.utils.optimizers import build_optimizer
        except ImportError:  # a revision from before the choice
            pass
        else:
            return build_optimizer('AdamW', net.parameters(), 1e-4)
    return torch.optim.AdamW(net.parameters(), lr=1e-4)


def _implementation(optimizer):
    """'fused', 'foreach' or 'loop': which of PyTorch's AdamW implementations ``optimizer`` runs."""
    return 'fused' if optimizer.defaults.get('fused') else 'foreach' if optimizer.defaults.get('foreach') else 'loop'


def _synchronize(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _measure(spec):
    """Run one measurement described by ``spec`` (a dict, see :func:`benchmark`) in this process."""
    spec = dict(spec, retain_freed_memory=_retain_freed_memory(spec))
    torch.manual_seed(0)
    if spec.get('threads'):
        torch.set_num_threads(spec['threads'])
    device = torch.device(spec['device'])
    dtype = DTYPES[spec['dtype']]
    net = _build(spec).to(device)
    if dtype == torch.float64:
        net = net.double()
    # bf16 runs under autocast (weights stay fp32, as in mixed-precision training)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if dtype == torch.bfloat16 else nullcontext()
    spec = dict(spec, **_built_settings(net))
    model = torch.compile(net) if spec.get('compile') else net
    height, width = spec['size']
    channels = net.patch_embed.proj.in_channels
    data_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    lq = torch.rand(spec['batch'], channels, height, width, device=device, dtype=data_dtype)

    if spec['mode'] == 'train':
        net.train()
        gt = torch.rand_like(lq[:, :3])
        optimizer = _optimizer(spec, net)
        spec['optimizer'] = _implementation(optimizer)

        def step():
            optimizer.zero_grad(set_to_none=True)
            with autocast:
                loss = torch.nn.functional.l1_loss(model(lq).float(), gt.float())
            loss.backward()
            optimizer.step()
    else:
        net.eval()

        def step():
            with torch.inference_mode(), autocast:
                model(lq)

    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in range(spec['warmup'] + spec['repeat']):
        _synchronize(device)
        start = time.perf_counter()
        step()
        _synchronize(device)
        if i >= spec['warmup']:
            times.append(time.perf_counter() - start)
    result = dict(spec, median_s=statistics.median(times), min_s=min(times), times_s=times)
    # the peak before anything else runs (the FLOP count and the matmul peak below add nothing to a step's peak)
    if device.type == 'cuda':
        result['peak_cuda_gb'] = torch.cuda.max_memory_allocated(device) / 1e9
        result['device_name'] = torch.cuda.get_device_name(device)
    else:
        result['peak_rss_gb'] = _peak_rss_gb()
        result['device_name'] = platform.processor() or platform.machine()
    if not spec.get('compile') and spec.get('count_flops', True):
        passes = 3 if spec['mode'] == 'train' else 1  # forward, then gradients of inputs and of weights
        with autocast:
            result['gflop_per_step'] = passes * _count_flops(lambda: net(lq)) / 1e9
        result['gflops'] = result['gflop_per_step'] / result['median_s']
        if spec.get('matmul_peak', True):
            result['matmul_peak_gflops'] = _matmul_peak(device)
            result['peak_fraction'] = result['gflops'] / result['matmul_peak_gflops']
    if spec.get('profile'):
        result['top_ops'], result['convolution_share'], result['profiled_s'] = _profile(step, device, spec['profile'])
    if spec.get('source') or spec.get('reference'):
        result['network_file'] = sys.modules[type(net).__module__].__file__
    result['torch'] = torch.__version__
    result['threads'] = torch.get_num_threads()
    return result


def benchmark(specs):
    """Measure each spec in its own spawned process (so peak memory is per measurement); returns results.

    A spec: ``mode`` ('train' | 'infer'), ``size`` (H, W), ``batch``, ``device``, ``dtype`` ('fp32' | 'bf16' |
    'fp64'), ``warmup``, ``repeat``, and optionally ``opt`` (YAML with network_g), ``variant``,
    ``use_checkpoint``, ``channels_last``, ``compile``, ``threads``, ``profile`` (how many operators to list),
    ``system_malloc`` (keep glibc's allocation defaults instead of :mod:`hint_plugin.utils.allocator`'s),
    ``source`` (measure the ``HINT`` of the package version in that directory) and ``revision`` (its label),
    ``reference`` (measure the authors' ``HINT`` of that ``HINT_arch.py``), ``code`` (the row's label),
    ``count_flops`` (default True: count a step's FLOPs and time the matmul peak afterwards) and ``matmul_peak``
    (default True; False: count the FLOPs without timing the matmul peak).
    """
    context = multiprocessing.get_context('spawn')
    results = []
    for spec in specs:
        if spec.get('source'):
            results.append(_measure_source(spec))
            continue
        with context.Pool(1) as pool:
            results.append(pool.apply(_measure, (spec, )))
    return results


# run by _measure_source (and by studies/scaling.py): this file loaded by path, so the child's ``hint_plugin`` is the
# one on PYTHONPATH
_SOURCE_CHILD = """
import importlib.util, json, sys
module_spec = importlib.util.spec_from_file_location('_hint_benchmark', sys.argv[1])
module = importlib.util.module_from_spec(module_spec)
module_spec.loader.exec_module(module)
print('BENCHMARK-RESULT ' + json.dumps(module._measure(json.loads(sys.argv[2]))))
"""


def _measure_source(spec):
    """:func:`_measure` in a fresh interpreter whose ``hint_plugin`` is the one in ``spec['source']``."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [spec['source'], os.environ.get('PYTHONPATH')])))
    child = subprocess.run([sys.executable, '-c', _SOURCE_CHILD, __file__, json.dumps(spec)], cwd=spec['source'],
                           env=env, capture_output=True, text=True, check=False)
    lines = [line for line in child.stdout.splitlines() if line.startswith('BENCHMARK-RESULT ')]
    if child.returncode != 0 or not lines:
        raise RuntimeError(f"measuring the network of {spec['source']} failed (exit code {child.returncode}):\n"
                           f'{child.stderr[-3000:]}')
    return json.loads(lines[-1].removeprefix('BENCHMARK-RESULT '))


def export_revision(revision, directory, repo):
    """Write the files of git ``revision`` of the repository at ``repo`` into ``directory``; returns its short hash.

    ``git archive`` rather than a worktree: nothing to clean up in the repository, and it works in shallow clones
    for the commits they hold.
    """
    def git(problem, *args):
        result = subprocess.run(['git', '-C', str(repo), *args], capture_output=True, check=False)
        if result.returncode != 0:
            raise ValueError(f'{problem} (git {args[0]}: {result.stderr.decode().strip()})')
        return result.stdout

    commit = git(f'{revision!r} is not a commit of the repository at {repo}',
                 'rev-parse', '--short', '--verify', f'{revision}^{{commit}}').decode().strip()
    archive = Path(directory) / 'revision.tar'
    archive.write_bytes(git(f'cannot export commit {commit}', 'archive', '--format=tar', commit))
    with tarfile.open(archive) as tar:
        tar.extractall(directory, filter='data')
    archive.unlink()
    return commit


def profile_lines(result):
    """The operator breakdown of a profiled result, one line each."""
    lines = [f"{result['mode']} {result['size'][0]}x{result['size'][1]}: {result['profiled_s']:.3f} s of operator self "
             f"time, {100 * result['convolution_share']:.0f}% in convolutions (forward and backward)"]
    lines += [f'  {name:40s} {seconds:8.3f} s' for name, seconds in result['top_ops']]
    return lines


def table(results):
    """A Markdown table of :func:`benchmark` results."""
    columns = ['round', 'code', 'mode', 'size', 'batch', 'device', 'dtype', 'variant', 'ckpt', 'ch-last', 'compile',
               'freed kept', 'AdamW', 'median s', 'min s', 'peak GB', 'GFLOP/step', 'GFLOP/s',
               'of matmul peak GFLOP/s']
    lines = ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
    for r in results:
        peak = r.get('peak_cuda_gb', r.get('peak_rss_gb'))
        share = (f"{100 * r['peak_fraction']:.0f}% of {r['matmul_peak_gflops']:.0f}" if 'peak_fraction' in r
                 else '-')
        flops = f"{r['gflop_per_step']:.3g} | {r['gflops']:.3g} | {share}" if 'gflops' in r else '- | - | -'
        lines.append(f"| {r.get('round', 1)} | {r.get('code') or 'this tree'} | {r['mode']} | "
                     f"{r['size'][0]}x{r['size'][1]} | {r['batch']} | {r['device']} | {r['dtype']} | "
                     f"{r.get('built_variant', '-')} | {r.get('built_use_checkpoint', '-')} | "
                     f"{r.get('built_channels_last', '-')} | {bool(r.get('compile'))} | "
                     f"{r['retain_freed_memory']} | {r.get('optimizer', '-')} | {r['median_s']:.3f} | "
                     f"{r['min_s']:.3f} | {peak:.2f} | {flops} |")
    return '\n'.join(lines)


LEGEND = """variant, ckpt (use_checkpoint), ch-last: as the measured network was built ('-': not this package's HINT).
freed kept: freed memory kept in the process (hint_plugin/utils/allocator.py). peak GB: the process's own peak.
GFLOP/step: convolution and matrix-product FLOPs of one step (training: 3 forward passes); GFLOP/s: over the
median time; of matmul peak: that rate as a share of fp32 2048 x 2048 matrix products timed in the same process
('-' with --no-matmul-peak).
'this tree' is the working tree, uncommitted edits included."""


def comparison_lines(results):
    """This tree against each other code, per mode: ratios of the medians over rounds of time and peak memory."""
    lines = []
    for mode in dict.fromkeys(r['mode'] for r in results):
        rows = [r for r in results if r['mode'] == mode]
        ours = [r for r in rows if not r.get('code')]
        for other in dict.fromkeys(r['code'] for r in rows if r.get('code')):
            theirs = [r for r in rows if r.get('code') == other]
            if not ours or not theirs:
                continue
            t_ours, t_theirs = (statistics.median(r['median_s'] for r in side) for side in (ours, theirs))
            m_ours, m_theirs = (statistics.median(r.get('peak_cuda_gb', r.get('peak_rss_gb')) for r in side)
                                for side in (ours, theirs))
            rounds = ' / '.join(f"{a['median_s'] / b['median_s']:.2f}" for a, b in zip(ours, theirs))
            optimizers = {side[0].get('optimizer') for side in (ours, theirs)}
            adamw = (f"; AdamW {ours[0]['optimizer']} against {theirs[0]['optimizer']} (--adamw loop or fused: "
                     'the same for both)') if len(optimizers) > 1 else ''
            lines.append(f'{mode} {ours[0]["size"][0]}x{ours[0]["size"][1]}: this tree / {other}: time '
                         f'{t_ours / t_theirs:.2f}x ({t_ours:.3f} s against {t_theirs:.3f} s, medians of '
                         f'{len(ours)} and {len(theirs)} rounds; round by round {rounds}), peak memory '
                         f'{m_ours / m_theirs:.2f}x ({m_ours:.2f} GB against {m_theirs:.2f} GB){adamw}')
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--opt', help='a YAML whose network_g describes the network (default: HINT defaults)')
    parser.add_argument('--variant', choices=['official', 'refined'])
    parser.add_argument('--mode', nargs='+', choices=['train', 'infer'], default=['train', 'infer'])
    parser.add_argument('--train-size', type=int, nargs=2, default=[128, 128], metavar=('H', 'W'))
    parser.add_argument('--infer-size', type=int, nargs=2, default=[256, 256], metavar=('H', 'W'))
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N')
    parser.add_argument('--dtype', choices=sorted(DTYPES), default='fp32')
    parser.add_argument('--use-checkpoint', action='store_true', help='activation checkpointing (training)')
    parser.add_argument('--no-channels-last', action='store_true', help='keep features in NCHW memory')
    parser.add_argument('--compile', action='store_true', help='torch.compile the network')
    parser.add_argument('--system-malloc', action='store_true',
                        help='glibc\'s default allocation for every measurement (freed large blocks go back to the '
                        'system; see hint_plugin/utils/allocator.py)')
    parser.add_argument('--threads', type=int, help='torch CPU threads (default: PyTorch\'s)')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--rounds', type=int, default=1,
                        help='with --reference or --revision: measure this tree and the other code this many times, '
                        'alternating (ABBA), each in a fresh process')
    parser.add_argument('--adamw', choices=['own', 'loop', 'fused'], default='own',
                        help='AdamW as each code\'s training builds it (own: fused here, the loop for the reference) '
                        'or the same implementation for both')
    parser.add_argument('--no-matmul-peak', action='store_true',
                        help='do not time fp32 2048 x 2048 matrix products after each measurement (about 1.5 s each '
                        'on one CPU thread): the FLOPs and GFLOP/s are still given, not their share of that peak')
    parser.add_argument('--profile', type=int, default=0, metavar='N',
                        help='profile one more step and list the N operators that took the most time')
    parser.add_argument('--reference', metavar='PATH',
                        help='also measure the authors\' HINT: their HINT_arch.py or a checkout of joshyZhou/HINT '
                        '(its imports: pip install -r requirements/reference.txt)')
    parser.add_argument('--revision', help='also measure the HINT of this git revision of the repository (e.g. '
                        '7b31ea6, the first port, which keeps the reference\'s structure)')
    parser.add_argument('--json', help='write the results to this file')
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f'--rounds must be at least 1, got {args.rounds}')
    if args.opt:
        check_option_file(args.opt, parser)
    reference = None
    if args.reference:
        try:
            reference = reference_file(args.reference)
            load_reference(reference)  # its imports, before any measurement starts
        except (ValueError, ModuleNotFoundError) as error:
            parser.error(str(error))
    if not args.revision:
        return run(args, None, None, reference)
    with tempfile.TemporaryDirectory(prefix='hint-revision-') as source:
        try:
            revision = export_revision(args.revision, source, REPO)
        except ValueError as error:
            parser.error(str(error))
        return run(args, source, revision, reference)


def check_option_file(path, parser):
    """Read ``--opt`` once as every entry point does (safe YAML, no duplicate keys; the measuring processes may
    run another revision's plugin), exiting with status 2 and the message when it is refused."""
    import hint_plugin  # noqa: F401  (before BasicSR: the torchvision alias)
    from hint_plugin.utils.options import OptionsError, read_options
    try:
        read_options(path)
    except OptionsError as error:
        parser.error(str(error))


def run(args, source, revision, reference):
    """Measure, print the table, comparisons and profiles, write the JSON.

    ``source`` holds ``revision``'s files (or is None); ``reference`` is the authors' HINT_arch.py (or None).
    """
    contenders = [{}]
    if source:
        contenders.append(dict(source=source, revision=revision, code=revision))
    if reference:
        contenders.append(dict(reference=str(reference), code='reference'))
    specs = []
    for round_index in range(args.rounds if len(contenders) > 1 else 1):
        order = contenders if round_index % 2 == 0 else contenders[::-1]
        for contender in order:
            for mode in args.mode:
                specs.append(dict(
                    mode=mode, size=args.train_size if mode == 'train' else args.infer_size, batch=args.batch,
                    device=args.device, dtype=args.dtype, warmup=args.warmup, repeat=args.repeat,
                    opt=osp.abspath(args.opt) if args.opt else None,
                    variant=args.variant, use_checkpoint=args.use_checkpoint or None,
                    channels_last=False if args.no_channels_last else None, compile=args.compile,
                    threads=args.threads, profile=args.profile, system_malloc=args.system_malloc, adamw=args.adamw,
                    matmul_peak=not args.no_matmul_peak, round=round_index + 1, **contender))
    results = benchmark(specs)
    print(table(results))
    print('\n' + LEGEND)
    for dropped in dict.fromkeys(tuple(r['dropped_keys']) for r in results if r.get('dropped_keys')):
        print(f"\nthe reference's HINT() does not take network_g's {', '.join(dropped)}: not applied to it")
    comparisons = comparison_lines(results)
    if comparisons:
        print('\n' + '\n'.join(comparisons))
    for result in results:
        if result.get('profile'):
            print(f"\n{result.get('code') or 'this tree'}, round {result['round']}:")
            print('\n'.join(profile_lines(result)))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=2)


if __name__ == '__main__':
    main()
