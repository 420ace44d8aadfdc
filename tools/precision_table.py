"""PSNR against float32 and time per image of HINT in each precision (fp32, bf16, fp16), as a Markdown table.

    python tools/precision_table.py --weights demo/net_g_latest.pth --config options/demo/X.yml -i photos/
    python tools/precision_table.py                      # random default HINT, skimage's astronaut, 256 x 256
    python tools/precision_table.py --same-order         # float32's channel orders replayed in every precision

Images are restored whole at their size (or centre-cropped to --crop), one at a time; each precision gets one
untimed warm-up pass. With --same-order the table shows the arithmetic's error alone: HINT's channel ordering
is discontinuous, and a rounding that swaps two nearly equally correlated channels changes the output more.
"""
import argparse
import sys
from os import path as osp

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without installing

import torch  # noqa: E402

from hint_plugin.inference import collect_inputs, load_network, resolve_device  # noqa: E402
from hint_plugin.precision import PRECISIONS  # noqa: E402
from hint_plugin.precision_study import format_rows, precision_rows  # noqa: E402
from hint_plugin.utils.image_io import crop_center, read_image, to_rgb_float  # noqa: E402
from hint_plugin.utils.options import OptionsError, network_options, read_options  # noqa: E402


def load_images(inputs, crop):
    """The images of ``inputs`` (files, folders, globs) as ``(1, 3, H, W)`` float32; skimage's astronaut if none."""
    if not inputs:
        from skimage import data
        images = [torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float() / 255]
    else:
        files, problems = collect_inputs(inputs)
        if problems:
            raise SystemExit('error: ' + ', '.join(f'{name}: {why}' for name, why in problems))
        images = [torch.from_numpy(to_rgb_float(read_image(path))[0]).permute(2, 0, 1)[None] for path in files]
    return [crop_center(image, crop, channels_last=False).contiguous() if crop else image for image in images]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-i', '--input', nargs='*', help='images, folders or globs (default: skimage astronaut)')
    parser.add_argument('--weights', help='checkpoint (.pth or .safetensors); default: random weights, --seed')
    parser.add_argument('--config', help='option file whose network_g describes the network (default HINT())')
    parser.add_argument('--param-key', help='checkpoint key, which must then exist (default: params_ema, falling '
                                            'back to params, then a bare state_dict)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the random weights without --weights')
    parser.add_argument('--crop', type=int, default=256, help='centre crop size; 0 for whole images (default 256)')
    parser.add_argument('--precisions', nargs='+', choices=list(PRECISIONS), default=list(PRECISIONS))
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, help='torch CPU threads (default: torch\'s)')
    parser.add_argument('--same-order', action='store_true', help='replay float32\'s channel orders')
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    torch.manual_seed(args.seed)
    try:
        network_opt = network_options(read_options(args.config), args.config) if args.config else {'type': 'HINT'}
    except OptionsError as error:
        parser.error(str(error))
    net = load_network(network_opt, args.weights, args.param_key or 'params_ema', device=device,
                       exact_key=args.param_key is not None)
    images = load_images(args.input, args.crop or None)
    rows = precision_rows(net, images, args.precisions, device, same_order=args.same_order)
    print(f'{len(images)} image(s), {"x".join(map(str, images[0].shape[-2:]))} first; device {device}, '
          f'{torch.get_num_threads()} threads; weights {args.weights or f"random (seed {args.seed})"}; '
          f'channel orders {"replayed from fp32" if args.same_order else "recomputed"}')
    print(format_rows(rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())
