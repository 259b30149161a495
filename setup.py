"""mmspatialmamba: Spatial-Mamba as an OpenMMLab backbone, with Triton kernels.

Nothing is compiled at install: the kernels are Triton JIT kernels. ``ops/`` ships as the
subpackage ``mmspatialmamba.ops``. torch is deliberately not in ``install_requires``: pip
would resolve an unpinned (or merely bounded) torch to the newest multi-GB CUDA build even on
a CPU machine. Install the torch build you want first (``tools/setup_env.sh`` pins the tested
one); ``mmspatialmamba`` checks its version at import and says what to do if it is too old.

The configs ship inside the package as ``mmspatialmamba/.mim/configs``, with the model index
``mmspatialmamba/.mim/model-index.yml`` (the layout of mmdet's and mmseg's wheels, where mim
looks), so an install without a clone has them too. An editable install (``pip install -e``)
does not get that copy: use the clone's ``configs/`` (``mim search`` finds no model index).
"""
import ast
import glob
import os

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py


# Shipped as mmspatialmamba/.mim/<path> (MANIFEST.in puts them in the source distribution).
MIM_FILES = ('model-index.yml', 'configs/**/*.py', 'configs/**/*.yml')


class BuildPyWithConfigs(build_py):
    """build_py that also copies :data:`MIM_FILES` into ``mmspatialmamba/.mim``."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        paths = [path for pattern in MIM_FILES
                 for path in sorted(glob.glob(pattern, recursive=True))]
        if 'model-index.yml' not in paths:
            raise FileNotFoundError('model-index.yml not found beside setup.py: build from a '
                                    'clone, or from a source distribution made with MANIFEST.in')
        for path in paths:
            target = os.path.join(self.build_lib, 'mmspatialmamba', '.mim', path)
            self.mkpath(os.path.dirname(target))
            self.copy_file(path, target)


def read_version() -> str:
    """``__version__`` from mmspatialmamba/version.py, parsed without importing the package
    (which needs torch, not installed at build time)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'mmspatialmamba', 'version.py')
    with open(path) as f:
        for node in ast.parse(f.read()).body:
            if isinstance(node, ast.Assign) and \
                    [getattr(t, 'id', None) for t in node.targets] == ['__version__']:
                return ast.literal_eval(node.value)
    raise RuntimeError(f'no __version__ = ... in {path}')


setup(
    name='mmspatialmamba',
    version=read_version(),
    license='Apache-2.0',
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
        'vis': ['scikit-image'],   # example photographs for tools/analysis (docs/visualise.md)
    },
    cmdclass={'build_py': BuildPyWithConfigs},
)
