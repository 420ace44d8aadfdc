"""Cost as images grow: HINT's inference time and peak memory against image size, this tree in fp32 and bf16
against the authors' code in fp32; prints a Markdown table, writes JSON and a log-log plot.

    python studies/scaling.py --reference ../HINT --sizes 256 512 1024 --rounds 3 --plot docs/scaling.png
    python studies/scaling.py --sizes 256 512 --precisions fp32 bf16              # this tree only
    python studies/scaling.py --device cuda --sizes 512 1024 2048 --compile       # on a GPU (studies/gpu_scaling.sh)

Every measurement is one forward pass of a square SIZE x SIZE image under torch.inference_mode, in a fresh
process (studies/benchmark.py's timing code: --warmup untimed passes, then the median of --repeat), with the
process's own peak resident memory (the peak CUDA allocation on a GPU). bf16 is `hint-infer --precision bf16`:
autocast with float32 weights. The contenders run in alternating order, round by round (A B C, then C B A ...),
so the host's drift falls on all of them alike; each ratio is the median of the per-round ratios, with their
spread.

Memory grows linearly with the pixel count; a least-squares line through each contender's peaks gives its memory
per megapixel and the largest square image it restores whole within --memory-gib (derived from the line, not
measured). Where the reference's line predicts more than --memory-gib at a size, that size is not run for it
and the table says so; a measuring process killed anyway (out of memory) is reported the same way.
"""
import argparse
import functools
import importlib.util
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

STUDIES = Path(__file__).resolve().parent
GIB = 2**30

@functools.lru_cache(maxsize=None)
def load_benchmark():
    """studies/benchmark.py as a module (loaded by path: the studies are not a package)."""
    module_spec = importlib.util.spec_from_file_location('_hint_benchmark', STUDIES / 'benchmark.py')
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def contenders(precisions, reference):
    """``[(label, spec keys)]``: this tree in each precision, then the reference in fp32 (when given)."""
    rows = [(f'this {precision}', {'dtype': precision}) for precision in precisions]
    if reference:
        rows.append(('reference fp32', {'dtype': 'fp32', 'reference': str(reference), 'code': 'reference'}))
    return rows


def round_orders(names, rounds):
    """The order of ``names`` in each round: as given, then reversed, alternately."""
    return [list(names) if index % 2 == 0 else list(reversed(names)) for index in range(rounds)]


def measure(spec):
    """Run one measurement in a fresh process (studies/benchmark.py's child: its ``_measure`` loaded by path); its
    result dict, or ``{'failed': reason}`` when the process ran out of memory."""
    child = subprocess.run([sys.executable, '-c', load_benchmark()._SOURCE_CHILD, str(STUDIES / 'benchmark.py'),
                            json.dumps(spec)], capture_output=True, text=True, check=False)
    lines = [line for line in child.stdout.splitlines() if line.startswith('BENCHMARK-RESULT ')]
    if child.returncode == 0 and lines:
        return json.loads(lines[-1].removeprefix('BENCHMARK-RESULT '))
    if child.returncode in (-9, 137) or 'MemoryError' in child.stderr or 'out of memory' in child.stderr:
        return {'failed': 'out of memory (the measuring process was killed or could not allocate)'}
    raise RuntimeError(f'measuring {spec["size"]} ({spec.get("code") or "this tree"} {spec["dtype"]}) failed '
                       f'(exit code {child.returncode}):\n{child.stderr[-3000:]}')


def peak_gb(result):
    return result.get('peak_cuda_gb', result.get('peak_rss_gb'))


def fit_line(points):
    """Least-squares ``(intercept, slope)`` of ``[(x, y)]``, which must hold at least two distinct ``x``."""
    mean_x = statistics.fmean(x for x, _ in points)
    mean_y = statistics.fmean(y for _, y in points)
    slope = (sum((x - mean_x) * (y - mean_y) for x, y in points) /
             sum((x - mean_x)**2 for x, _ in points))
    return mean_y - slope * mean_x, slope


def predicted_peak_gb(results, name, megapixels):
    """The peak ``name`` would reach at ``megapixels`` by the line through its peaks so far (None: fewer than
    two sizes measured)."""
    points = [(r['megapixels'], peak_gb(r)) for r in results if r['name'] == name and 'failed' not in r]
    if len({x for x, _ in points}) < 2:
        return None
    intercept, slope = fit_line(points)
    return intercept + slope * megapixels


def run(args, reference):
    """All measurements, size by size (smallest first) and round by round; returns the list of results."""
    rows = contenders(args.precisions, reference)
    limit_gb = args.memory_gib * GIB / 1e9
    results = []
    for size in sorted(args.sizes):
        megapixels = size * size / 1e6
        skipped = set()
        for name, keys in rows:
            predicted = predicted_peak_gb(results, name, megapixels)
            if keys.get('reference') and predicted is not None and predicted > limit_gb:
                skipped.add(name)
                results.append({'name': name, 'size': size, 'megapixels': megapixels, 'round': 0,
                                'failed': f'not run: its line predicts {predicted:.1f} GB > {args.memory_gib} GiB'})
        for round_index, order in enumerate(round_orders([name for name, _ in rows], args.rounds)):
            for name in order:
                if name in skipped:
                    continue
                keys = dict(rows)[name]
                spec = dict(mode='infer', size=[size, size], batch=1, device=args.device, warmup=args.warmup,
                            repeat=args.repeat, opt=os.path.abspath(args.opt) if args.opt else None,
                            variant=args.variant, use_checkpoint=None,
                            channels_last=False if args.no_channels_last else None, compile=args.compile,
                            threads=args.threads, profile=0, system_malloc=False, adamw='own',
                            count_flops=False, round=round_index + 1, **keys)
                result = measure(spec)
                result.update(name=name, size=size, megapixels=megapixels, round=round_index + 1)
                results.append(result)
                shown = (result['failed'] if 'failed' in result else
                         f"{result['median_s']:.2f} s, {peak_gb(result):.2f} GB")
                print(f'{size}x{size} round {round_index + 1} {name}: {shown}', file=sys.stderr, flush=True)
                if 'failed' in result:
                    skipped.add(name)
    return results


def _ratios(results, size, name, other, key):
    """Per-round ratios ``name / other`` of ``key`` at ``size`` (rounds where both were measured)."""
    by_round = {}
    for r in results:
        if r['size'] == size and 'failed' not in r and r['name'] in (name, other):
            by_round.setdefault(r['round'], {})[r['name']] = key(r)
    return [values[name] / values[other] for values in by_round.values() if name in values and other in values]


def _median(results, size, name, key):
    values = [key(r) for r in results if r['size'] == size and r['name'] == name and 'failed' not in r]
    return statistics.median(values) if values else None


def _ratio_text(ratios):
    if not ratios:
        return '-'
    spread = f' ({min(ratios):.2f}-{max(ratios):.2f})' if len(ratios) > 1 else ''
    return f'{statistics.median(ratios):.2f}x{spread}'


def table(results, names):
    """The Markdown table: per size, each contender's median time and peak; ratios to the reference's fp32."""
    reference = 'reference fp32' if 'reference fp32' in names else None
    ours = [name for name in names if name != reference]
    columns = ['size', 'MP'] + [f'{name} s' for name in names] + [f'{name} GB' for name in names]
    if reference:
        columns += [f'{name} / reference: time' for name in ours] + [f'{name} / reference: memory' for name in ours]
    lines = ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]

    def time(r):
        return r['median_s']

    for size in sorted({r['size'] for r in results}):
        cells = [f'{size}x{size}', f'{size * size / 1e6:.3g}']
        for key, unit in ((time, '{:.2f}'), (peak_gb, '{:.2f}')):
            for name in names:
                value = _median(results, size, name, key)
                failed = next((r['failed'] for r in results if r['size'] == size and r['name'] == name
                               and 'failed' in r), None)
                cells.append(unit.format(value) if value is not None else (failed or '-'))
        if reference:
            cells += [_ratio_text(_ratios(results, size, name, reference, time)) for name in ours]
            cells += [_ratio_text(_ratios(results, size, name, reference, peak_gb)) for name in ours]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def memory_lines(results, names, memory_gib):
    """Each contender's memory per megapixel and the largest square image whole within ``memory_gib``."""
    limit_gb = memory_gib * GIB / 1e9
    lines = []
    for name in names:
        points = [(r['megapixels'], peak_gb(r)) for r in results if r['name'] == name and 'failed' not in r]
        if len({x for x, _ in points}) < 2:
            continue
        intercept, slope = fit_line(points)
        if slope <= 0 or intercept >= limit_gb:
            lines.append(f'{name}: peak memory {"does not grow" if slope <= 0 else "already above the budget"} '
                         f'over the sizes measured: no largest image derived')
            continue
        largest = (limit_gb - intercept) / slope
        side = int((largest * 1e6)**0.5)
        lines.append(f'{name}: {slope:.2f} GB per megapixel above {intercept:.2f} GB (least squares over '
                     f'{len({x for x, _ in points})} sizes); largest image whole within {memory_gib:g} GiB: {largest:.2f} MP, '
                     f'about {side}x{side} (derived from the line)')
    return lines


def plot(results, names, path):
    """Time and peak memory against megapixels, log-log, one line per contender (matplotlib, PNG)."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot

    figure, (left, right) = pyplot.subplots(1, 2, figsize=(10, 4))
    for name in names:
        sizes = sorted({r['size'] for r in results if r['name'] == name and 'failed' not in r})
        megapixels = [size * size / 1e6 for size in sizes]
        for axis, key in ((left, lambda r: r['median_s']), (right, peak_gb)):
            axis.plot(megapixels, [_median(results, size, name, key) for size in sizes], marker='o', label=name)
    for axis, label in ((left, 'time per image (s)'), (right, 'peak memory (GB)')):
        axis.set_xscale('log')
        axis.set_yscale('log')
        axis.set_xlabel('megapixels')
        axis.set_ylabel(label)
        axis.grid(True, which='both', alpha=0.3)
        axis.legend()
    device = next((r.get('device_name') for r in results if 'failed' not in r), '')
    figure.suptitle(f'HINT inference against image size ({device})')
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0] + '.',
                                     epilog='\n\n'.join(__doc__.split('\n\n')[1:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--sizes', type=int, nargs='+', default=[256, 512, 1024], metavar='SIZE',
                        help='square image sides to measure (default: 256 512 1024)')
    parser.add_argument('--precisions', nargs='+', choices=['fp32', 'bf16'], default=['fp32', 'bf16'],
                        help="this tree's precisions (default: fp32 bf16)")
    parser.add_argument('--reference', metavar='PATH',
                        help="the authors' HINT_arch.py, or the root of a checkout of their repository")
    parser.add_argument('--rounds', type=int, default=3, help='alternating rounds (default 3)')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--repeat', type=int, default=1)
    parser.add_argument('--memory-gib', type=float, default=24.0,
                        help='memory budget for the largest whole image, and above which the reference is not '
                             'run (default 24)')
    parser.add_argument('--opt', help='a YAML whose network_g describes the network (default: HINT defaults)')
    parser.add_argument('--variant', choices=['official', 'refined'])
    parser.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N')
    parser.add_argument('--no-channels-last', action='store_true', help="this tree's features in NCHW memory")
    parser.add_argument('--compile', action='store_true', help='torch.compile the network (compile time untimed: '
                                                               'it falls in the warm-up)')
    parser.add_argument('--threads', type=int, help="torch CPU threads (default: PyTorch's)")
    parser.add_argument('--json', help='write the results to this file')
    parser.add_argument('--plot', metavar='PNG', help='write the log-log plot to this file')
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.repeat < 1 or args.warmup < 0 or min(args.sizes) < 8:
        parser.error('--rounds and --repeat must be >= 1, --warmup >= 0 and every size >= 8')
    benchmark = load_benchmark()
    reference = None
    if args.reference:
        try:
            reference = benchmark.reference_file(args.reference)
            benchmark.load_reference(reference)
        except (ValueError, ModuleNotFoundError) as error:
            parser.error(str(error))
    if args.opt:
        benchmark.check_option_file(args.opt, parser)
    results = run(args, reference)
    names = [name for name, _ in contenders(args.precisions, reference)]
    print(table(results, names))
    lines = memory_lines(results, names, args.memory_gib)
    if lines:
        print('\n' + '\n'.join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if args.plot:
        plot(results, names, args.plot)
    return 0


if __name__ == '__main__':
    sys.exit(main())
