"""mmspatialmamba: Spatial-Mamba as an OpenMMLab backbone, with Triton kernels.

Nothing is compiled at install: the kernels are Triton JIT kernels. ``ops/`` ships as the
subpackage ``mmspatialmamba.ops``. torch is deliberately not in ``install_requires``: pip
would resolve an unpinned (or merely bounded) torch to the newest multi-GB CUDA build even on
a CPU machine. Install the torch build you want first (``tools/setup_env.sh`` pins the tested
one); ``mmspatialmamba`` checks its version at import and says what to do if it is too old.
"""
from setuptools import find_packages, setup

setup(
    name='mmspatialmamba',
    version='0.1.0',
    description='Spatial-Mamba (ICLR 2025) backbone for mmdet and mmseg, with Triton kernels',
    python_requires='>=3.9',
    packages=(find_packages(include=['mmspatialmamba', 'mmspatialmamba.*'])
              + ['mmspatialmamba.ops']
              + [f'mmspatialmamba.ops.{p}' for p in find_packages('ops')]),
    package_dir={'mmspatialmamba.ops': 'ops'},
    install_requires=[
        'mmengine>=0.10.0,<1.0',   # tested: 0.10.7
        'mmcv>=2.0.0,<2.2.0',      # tested: 2.1.0 (mmdet 3.3 / mmseg 1.2 need < 2.2)
        'numpy',
    ],
    extras_require={
        'det': ['mmdet>=3.0.0,<3.4.0'],                                 # tested: 3.3.0
        'seg': ['mmsegmentation>=1.0.0,<1.3.0', 'ftfy', 'regex'],       # tested: 1.2.2
        'triton': ['triton>=3.4'],      # ops/_validate.MIN_TRITON; compile-checked: 3.4, 3.6, 3.9
        'tests': ['pytest'],
    },
)
