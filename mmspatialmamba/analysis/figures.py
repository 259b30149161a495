"""Writing the analysis tools' matplotlib figures."""
import os.path as osp

from mmengine.utils import mkdir_or_exist


def save_figure(fig, path: str, dpi: int) -> None:
    """Write ``fig`` (a matplotlib Figure) to ``path``, creating its folder, then close it.

    The tools keep ``dpi`` low (80-90): their PNGs stay well under 300 KB.
    """
    import matplotlib.pyplot as plt
    mkdir_or_exist(osp.dirname(path) or '.')
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
