"""The architectures and the configuration detection depend on torch only: they build and run in a process where
`import basicsr` fails."""
import subprocess
import sys

from conftest import REPO

SCRIPT = '''
import sys
sys.modules['basicsr'] = None  # `import basicsr` now raises ImportError
import torch
from hint_plugin.archs import HINT, HMHA, QKCU
net = HINT(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1).eval()
with torch.no_grad():
    out = net(torch.rand(1, 3, 20, 12))
assert out.shape == (1, 3, 20, 12) and torch.isfinite(out).all()
assert HMHA(dim=16)(torch.rand(1, 16, 4, 4))[0].shape == (1, 16, 4, 4)
assert isinstance(QKCU(dim=16), torch.nn.Module)
from hint_plugin.utils.detection import detect_hint_config
assert detect_hint_config({'params': net.state_dict()})['dim'] == 8
try:
    import basicsr
except ImportError:
    pass
else:
    raise AssertionError('basicsr was importable')
loaded = sorted(name for name in sys.modules if name.startswith('hint_plugin.'))
print(' '.join(loaded))
'''


def test_archs_build_and_run_where_basicsr_cannot_be_imported():
    result = subprocess.run([sys.executable, '-c', SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=300,
                            env={'PYTHONPATH': str(REPO), 'PATH': '/usr/bin:/bin'})
    assert result.returncode == 0, result.stderr
    loaded = result.stdout.split()
    assert 'hint_plugin.archs.hint_arch' in loaded
    assert not any(name.startswith(('hint_plugin.models', 'hint_plugin.data', 'hint_plugin.losses'))
                   for name in loaded)
