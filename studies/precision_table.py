"""PSNR against float32 and time per image of HINT in each precision (fp32, bf16, fp16), as a Markdown table.

    python studies/precision_table.py --weights demo/net_g_latest.pth --config options/demo/X.yml -i photos/
    python studies/precision_table.py                      # random default HINT, skimage's astronaut, 256 x 256
    python studies/precision_table.py --same-order         # float32's channel orders replayed in every precision
    python studies/precision_table.py --weights W --config C -i clean/ --noise-sigma 25   # + PSNR vs the clean

With --noise-sigma the inputs are clean images: each is restored from itself plus Gaussian noise of that sigma
(0-255 scale, seeded by --seed and the image's position), and the table adds each precision's PSNR against the
clean image: what a precision changes in a denoiser's score.

Images are restored whole at their size (or centre-cropped to --crop), one at a time; each precision gets one
untimed warm-up pass. With --same-order the table shows the arithmetic's error alone: HINT's channel ordering
is discontinuous, and a rounding that swaps two nearly equally correlated channels changes the output more.

:class:`ChannelOrders` records the float32 pass's channel orders
(:func:`hint_plugin.archs.hmha_arch.channel_order`) and replays them, which separates the arithmetic's error
(orders replayed) from the swaps (orders recomputed).
"""
import argparse
import contextlib
import math
import sys
import time

import torch

import hint_plugin.archs.hmha_arch as hmha_arch
from hint_plugin.inference import collect_inputs, load_network, resolve_device
from hint_plugin.precision import PRECISIONS, with_precision
from hint_plugin.utils.image_io import crop_center, read_image, to_rgb_float
from hint_plugin.utils.options import OptionsError, network_options, read_options


class ChannelOrders:
    """Record HMHA's channel orders during one pass and replay them, in the same sequence, in later passes."""

    def __init__(self):
        self.orders = []

    @contextlib.contextmanager
    def _patched(self, function):
        original = hmha_arch.channel_order
        hmha_arch.channel_order = function
        try:
            yield self
        finally:
            hmha_arch.channel_order = original

    def recording(self):
        """A context in which every channel order computed is also appended to ``orders``."""
        original = hmha_arch.channel_order

        def record(tokens, *args):
            order = original(tokens, *args)
            self.orders.append(order)
            return order

        return self._patched(record)

    def replaying(self):
        """A context in which HMHA takes its orders from ``orders``, in sequence, instead of computing them."""
        replay = iter(self.orders)

        def replayed(tokens, *args):
            try:
                return next(replay)
            except StopIteration:
                raise RuntimeError('more attention blocks ran than orders were recorded') from None

        return self._patched(replayed)


def psnr(output, reference):
    """PSNR in dB of ``output`` against ``reference``, both clamped to [0, 1]; inf when they are equal."""
    mse = (output.float().clamp(0, 1) - reference.float().clamp(0, 1)).square().mean().item()
    return math.inf if mse == 0 else -10 * math.log10(mse)


def precision_rows(net, images, precisions=tuple(PRECISIONS), device='cpu', same_order=False, clean=None):
    """One row per precision: mean PSNR against float32 over ``images``, largest absolute difference, mean
    seconds per image (after one untimed warm-up pass), whether every output is finite.

    Args:
        net (nn.Module): the network in eval mode, float32, on ``device``.
        images (list of Tensor): ``(1, C, H, W)`` float32 images in [0, 1].
        precisions (sequence of str): names of :data:`hint_plugin.precision.PRECISIONS`.
        device (str | torch.device): where to run.
        same_order (bool): replay the float32 pass's channel orders in the other precisions.
        clean (list of Tensor, optional): the targets of ``images``; each row then has ``psnr_clean``, the mean
            PSNR of that precision's outputs against them.
    """
    device = torch.device(device)
    references, orders, rows = [], [], []
    with torch.inference_mode():
        for image in images:
            recorder = ChannelOrders()
            with recorder.recording():
                references.append(net(image.to(device)).float().cpu())
            orders.append(recorder)
        for precision in precisions:
            runner = with_precision(net, precision, device)
            with orders[0].replaying() if same_order else contextlib.nullcontext():
                runner(images[0].to(device))  # warm-up, not timed
            scores, largest, seconds, finite, against_clean = [], 0.0, 0.0, True, []
            for index, (image, reference, recorder) in enumerate(zip(images, references, orders)):
                context = recorder.replaying() if same_order else contextlib.nullcontext()
                with context:
                    start = time.perf_counter()
                    output = runner(image.to(device))
                    if device.type == 'cuda':
                        torch.cuda.synchronize(device)
                    seconds += time.perf_counter() - start
                output = output.float().cpu()
                finite = finite and bool(torch.isfinite(output).all())
                scores.append(psnr(output, reference))
                largest = max(largest, (output - reference).abs().max().item())
                if clean is not None:
                    against_clean.append(psnr(output, clean[index]))
            rows.append(dict(precision=precision, psnr=sum(scores) / len(scores), max_abs=largest,
                             seconds=seconds / len(images), finite=finite))
            if clean is not None:
                rows[-1]['psnr_clean'] = sum(against_clean) / len(against_clean)
    return rows


def format_rows(rows):
    """A Markdown table of :func:`precision_rows`."""
    clean = all('psnr_clean' in row for row in rows)
    lines = ['| precision | PSNR vs fp32 (dB) | max abs diff | s / image | finite |' + (' PSNR vs clean (dB) |' * clean),
             '|---|---|---|---|---|' + '---|' * clean]
    for row in rows:
        lines.append(f'| {row["precision"]} | {row["psnr"]:.2f} | {row["max_abs"]:.2e} | {row["seconds"]:.3f} | '
                     f'{"yes" if row["finite"] else "NO"} |' + (f' {row.get("psnr_clean", 0):.3f} |' * clean))
    return '\n'.join(lines)


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


def add_noise(images, sigma, seed):
    """``images`` plus Gaussian noise of ``sigma`` on the 0-255 scale, image ``i`` seeded by ``seed + i``."""
    return [image + torch.randn(image.shape, generator=torch.Generator().manual_seed(seed + i)) * (sigma / 255)
            for i, image in enumerate(images)]


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
    parser.add_argument('--noise-sigma', type=float, help='restore the inputs plus Gaussian noise of this sigma '
                                                          '(0-255 scale) and score each precision against them')
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
    clean = load_images(args.input, args.crop or None)
    if args.noise_sigma is not None and not args.noise_sigma > 0:
        parser.error(f'--noise-sigma must be a positive number, got {args.noise_sigma}')
    images = add_noise(clean, args.noise_sigma, args.seed) if args.noise_sigma else clean
    rows = precision_rows(net, images, args.precisions, device, same_order=args.same_order,
                          clean=clean if args.noise_sigma else None)
    print(f'{len(images)} image(s), {"x".join(map(str, images[0].shape[-2:]))} first; device {device}, '
          f'{torch.get_num_threads()} threads; weights {args.weights or f"random (seed {args.seed})"}; '
          f'channel orders {"replayed from fp32" if args.same_order else "recomputed"}'
          + (f'; noise sigma {args.noise_sigma:g}, seed {args.seed}' if args.noise_sigma else ''))
    print(format_rows(rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())
