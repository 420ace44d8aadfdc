"""``python studies/cache_study.py --opt TEST_YML --weights CKPT``: how the inter-layer cache options change a model.

Restores the noisy images of the test option file's first test set (``GaussianNoiseDataset``: the same noise,
per image, as ``tools/test.py``), optionally followed by the images of more folders with the same noise
settings, one after another on ONE module per mode, as the authors' test scripts call their network. Modes:
every ``cache_rounding`` (trunc, floor) with every ``cache_init`` (carry, zeros, none), official variant. It
prints, per mode, the mean PSNR on the test set, the output's largest and mean absolute difference from
``trunc + carry`` (the authors' code as they ran it, torch 1.12) over all images, and, for ``carry``, on how
many calls the carried cache was not all zeros.
"""
import argparse
from os import path as osp

import hint_plugin  # noqa: F401  (registers HINT; makes `import basicsr` work)
import torch
from basicsr.archs import build_network
from basicsr.metrics import calculate_psnr
from basicsr.utils import tensor2img
from tqdm import tqdm

from hint_plugin.data.gaussian_noise_dataset import GaussianNoiseDataset
from hint_plugin.utils.checkpoint import load_weights
from hint_plugin.utils.options import OptionsError, network_options, read_options

ROUNDINGS = ('trunc', 'floor')
INITS = ('carry', 'zeros', 'none')
REFERENCE_MODE = ('trunc', 'carry')


def noisy_sequence(options, folders):
    """``[(name, noisy (1,3,H,W), clean (1,3,H,W), scored)]``: the test set, then ``folders`` (not scored)."""
    dataset_opt = next(value for key, value in options['datasets'].items() if key.startswith('test'))
    items = []
    for folder, scored in [(dataset_opt['dataroot_gt'], True)] + [(folder, False) for folder in folders]:
        dataset = GaussianNoiseDataset(dict(dataset_opt, phase='test', dataroot_gt=folder))
        for item in dataset:
            items.append((osp.basename(item['gt_path']), item['lq'][None], item['gt'][None], scored))
    return items


def run_mode(network_opt, weights, items, rounding, init):
    """Outputs of one module called on every item in order, and the carried cache's state after each call."""
    net = build_network(dict(network_opt, variant='official', cache_rounding=rounding, cache_init=init)).eval()
    load_weights(net, weights, param_key='params')
    outputs, nonzero = [], []
    with torch.no_grad():
        for _, noisy, _, _ in tqdm(items, desc=f'{rounding} + {init}', leave=False):
            outputs.append(net(noisy))
            nonzero.append(net.carried_cache is not None and bool(net.carried_cache.count_nonzero()))
    return outputs, nonzero


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--opt', required=True, help='test option file (network_g and a GaussianNoiseDataset)')
    parser.add_argument('--weights', required=True, help='checkpoint (params)')
    parser.add_argument('--folders', nargs='*', default=[], help='more clean-image folders to run after the test set')
    args = parser.parse_args(argv)

    try:
        options = read_options(args.opt)
        network_opt = network_options(options, args.opt)
    except OptionsError as error:
        parser.error(str(error))
    network_opt.pop('cache_rounding', None), network_opt.pop('cache_init', None)
    items = noisy_sequence(options, args.folders)
    results = {(r, i): run_mode(network_opt, args.weights, items, r, i) for r in ROUNDINGS for i in INITS}
    reference = results[REFERENCE_MODE][0]
    scored = [k for k, item in enumerate(items) if item[3]]

    print(f'{len(items)} images in order ({len(scored)} scored: {", ".join(items[k][0] for k in scored)})\n')
    print('| cache_rounding | cache_init | test PSNR (dB) | max abs diff from trunc + carry | mean abs diff | '
          'calls with a non-zero carried cache |')
    print('|---|---|---:|---:|---:|---:|')
    for (rounding, init), (outputs, nonzero) in results.items():
        psnr = sum(calculate_psnr(tensor2img(outputs[k]), tensor2img(items[k][2]), crop_border=0)
                   for k in scored) / len(scored)
        diffs = [(out - ref).abs() for out, ref in zip(outputs, reference)]
        carried = f'{sum(nonzero)} of {len(nonzero)}' if init == 'carry' else '-'
        print(f'| {rounding} | {init} | {psnr:.2f} | {max(d.max().item() for d in diffs):.2e} | '
              f'{sum(d.mean().item() for d in diffs) / len(diffs):.2e} | {carried} |')


if __name__ == '__main__':
    main()
