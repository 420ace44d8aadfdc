"""hint-plugin: the HINT image-restoration Transformer (ICCV 2025) as a BasicSR plugin."""
from setuptools import find_packages, setup

setup(
    name='hint-plugin',
    version='0.1.0',
    description='HINT (Hierarchical multi-head attention with QKCU) for the BasicSR toolbox',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['hint_plugin', 'hint_plugin.*']),
    python_requires='>=3.9',
    # Ranges, not pins: a user's own CUDA build of torch must not be replaced. The Makefile installs the
    # exact, tested set from requirements/lock.txt.
    install_requires=[
        'torch>=2.1',
        'torchvision>=0.16',
        'basicsr==1.4.2',
        'numpy>=1.23',
        'opencv-python>=4.6',
        'lmdb>=1.4',
        'pyyaml>=6.0',
        'mmengine>=0.10',
        'scikit-image>=0.21',
        'tqdm>=4.60',
        'safetensors>=0.4',
    ],
    extras_require={
        'test': ['pytest>=7', 'pytest-timeout>=2.1', 'hypothesis>=6.80'],
        'export': ['onnx>=1.15', 'onnxruntime>=1.17', 'onnxscript>=0.7'],
        'interop': ['spandrel>=0.4.2'],
    },
)
