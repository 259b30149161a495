"""Reading the Markdown pages' tables, for the tests that hold them true (``test_docs.py``,
``configs/test_model_index.py``). Imported by name: pytest puts ``tests/`` on ``sys.path``."""
import os.path as osp
import re
from typing import Dict, List

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
RESULTS = osp.join(ROOT, 'docs', 'results.md')


def page_text(path: str) -> str:
    """The page without its HTML comments."""
    with open(path, encoding='utf-8') as f:
        return re.sub(r'<!--.*?-->', '', f.read(), flags=re.S)


def table(path: str, header: str) -> List[List[str]]:
    """The rows (cells stripped) of the Markdown table whose header row starts ``header``."""
    lines = page_text(path).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith('|'):
            break
        rows.append([cell.strip() for cell in line.strip('|').split('|')])
    return rows


def results_table() -> Dict[str, List[str]]:
    """docs/results.md's parameter and FLOP table by model, e.g. 'Mask R-CNN T': its cells,
    starting (model, input, params M, published params M, GFLOPs, published GFLOPs, ratio)."""
    return {row[0]: row for row in table(RESULTS, '| model | input')}
