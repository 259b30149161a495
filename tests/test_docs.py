"""The README and docs/ stay true, and no shipped file speaks of how the project was made.

What the README and the pages in ``docs/`` name must exist: every repository path (configs,
tools, benchmarks, tests, modules, with ``{a,b}`` alternatives and ``*`` expanded), every
relative link and image, every command's script, and every ``--option`` a command passes
(in the script's ``--help`` output, or for a shell script in its text or in the ``--help`` of
the Python tool it runs). The parameter and FLOP tables agree with each other and with the
code; the quick-start and CPU numbers the README quotes are the ones the docs list with their
commands. HTML comments (the ``<!-- FILL: ... -->`` spots) are not claims and are skipped.

Every shipped, git-tracked text file is searched for words about the project's making (work
sessions, issue numbers, borrowed machines, ...): files speak to users about the software as
it is. In Python files only comments and strings are prose; names such as ONNX Runtime's
``InferenceSession`` or pytest's ``scope='session'`` are allowed.
"""
import contextlib
import functools
import glob
import io
import itertools
import os
import os.path as osp
import re
import runpy
import subprocess
import sys
import tempfile
import tokenize
from typing import Dict, Iterator, List, Tuple

import pytest
import torch
from doc_tables import RESULTS, page_text, results_table, table

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
README = osp.join(ROOT, 'README.md')
DOCS = sorted(glob.glob(osp.join(ROOT, 'docs', '*.md')))
PAGES = [README] + DOCS
README_MAX_LINES = 165

# Repository paths in prose and code: a known top-level folder, not inside a URL or path.
PATH = re.compile(r'(?<![\w/.:-])((?:configs|tools|benchmarks|docs|mmspatialmamba|ops|tests|\.ci)'
                  r'/[\w./{},*-]*[\w}*/](?:::\w+)?)')
LINK = re.compile(r'\]\(([^)\s]+)\)|<img [^>]*src="([^"]+)"')
COMMAND = re.compile(r'(?:(?:\.venv/bin/)?python3?|bash)\s+((?:tools|benchmarks|\.ci)/[\w/.-]+)'
                     r'([^`\n]*)')
OPTION = re.compile(r'(?<![\w-])--[a-z][\w-]*')
RUNS = re.compile(r'(?<![\w/])(?:tools|benchmarks)/\w+\.py')   # the tool a shell script runs


def expand(pattern: str) -> List[str]:
    """``a_{t,s}_b`` -> ``['a_t_b', 'a_s_b']`` (any number of brace groups)."""
    parts = re.split(r'\{([^{}]*)\}', pattern)
    choices = [[p] if i % 2 == 0 else p.split(',') for i, p in enumerate(parts)]
    return [''.join(c) for c in itertools.product(*choices)]


def named_paths() -> Iterator[Tuple[str, str]]:
    """(page, path) for every repository path a page names, a ``::test`` suffix included."""
    for page in PAGES:
        for match in PATH.finditer(page_text(page)):
            yield osp.relpath(page, ROOT), match.group(1)


def commands() -> List[Tuple[str, str, List[str]]]:
    """(page, script, options) for every command line a page shows."""
    found = []
    for page in PAGES:
        for script, rest in COMMAND.findall(page_text(page)):
            rest = rest.split(' #')[0]
            found.append((osp.relpath(page, ROOT), script, OPTION.findall(rest)))
    return found


def test_readme_is_short():
    with open(README, encoding='utf-8') as f:
        lines = f.read().splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f'README.md has {len(lines)} lines; keep it <= {README_MAX_LINES} and move details '
        'to docs/')


def test_links_and_images_resolve():
    missing = []
    for page in PAGES:
        for link in (a or b for a, b in LINK.findall(page_text(page))):
            target = link.split('#')[0]
            if not target or re.match(r'[a-z]+:', target):   # anchors, URLs
                continue
            if not osp.exists(osp.join(osp.dirname(page), target)):
                missing.append(f'{osp.relpath(page, ROOT)}: {link}')
    assert not missing, f'links to files that do not exist: {missing}'


def test_named_paths_exist():
    missing = []
    for page, path in named_paths():
        path, _, test_name = path.partition('::')
        for candidate in expand(path):
            matches = glob.glob(osp.join(ROOT, candidate))
            if not matches:
                missing.append(f'{page}: {candidate}')
            elif test_name:
                with open(matches[0], encoding='utf-8') as f:
                    if f'def {test_name}(' not in f.read():
                        missing.append(f'{page}: {candidate}::{test_name}')
    assert not missing, f'paths named in the docs that do not exist: {missing}'


def test_path_pattern_finds_what_pages_name():
    """The checks above see paths in prose, tables, code and braces, and skip URLs."""
    text = ('see `configs/maskrcnn_spatialmamba_{t,s}_3x_coco.py` and tools/train.py, '
            'https://github.com/x/tools/y.py, mmdet/.mim/tools/train.py, '
            '`tests/models/test_backbone.py::test_matches_spec_oracle`.')
    found = [m.group(1) for m in PATH.finditer(text)]
    assert found == ['configs/maskrcnn_spatialmamba_{t,s}_3x_coco.py', 'tools/train.py',
                     'tests/models/test_backbone.py::test_matches_spec_oracle']
    assert expand(found[0]) == ['configs/maskrcnn_spatialmamba_t_3x_coco.py',
                                'configs/maskrcnn_spatialmamba_s_3x_coco.py']
    assert COMMAND.findall('`.venv/bin/python tools/get_flops.py --classifier tiny`  # x') == [
        ('tools/get_flops.py', ' --classifier tiny')]


def run_help(script: str) -> str:
    """What ``python SCRIPT --help`` prints, run in this process (torch and the package are
    imported already); the environment, ``sys.argv`` and temporary files are put back."""
    argv, environ = sys.argv, dict(os.environ)
    out = io.StringIO()
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(out):
        tempdir, tempfile.tempdir = tempfile.tempdir, tmp   # compile_check makes a cache dir
        sys.argv = [script, '--help']
        try:
            runpy.run_path(osp.join(ROOT, script), run_name='__main__')
        except SystemExit:
            pass
        finally:
            sys.argv, tempfile.tempdir = argv, tempdir
            os.environ.clear()
            os.environ.update(environ)
    return out.getvalue()


@pytest.fixture(scope='module')
def help_texts() -> Dict[str, str]:
    """``--help`` output of every Python script the pages run, or that a shell script they
    run hands its options to."""
    scripts = {script for _, script, _ in commands()}
    for script in [s for s in scripts if s.endswith('.sh') and osp.exists(osp.join(ROOT, s))]:
        with open(osp.join(ROOT, script), encoding='utf-8') as f:
            scripts.update(RUNS.findall(f.read()))
    helps = {s: run_help(s) for s in sorted(scripts)
             if s.endswith('.py') and osp.exists(osp.join(ROOT, s))}
    for script, text in helps.items():
        assert 'usage:' in text, f'{script} --help printed no usage:\n{text[-2000:]}'
    return helps


def test_commands_exist_and_take_their_options(help_texts):
    problems = []
    for page, script, options in commands():
        path = osp.join(ROOT, script)
        if not osp.exists(path):
            problems.append(f'{page}: {script} does not exist')
            continue
        if script.endswith('.py'):
            accepted = help_texts[script]
        else:
            with open(path, encoding='utf-8') as f:
                accepted = f.read()
            accepted += ''.join(help_texts.get(s, '') for s in RUNS.findall(accepted))
        problems += [f'{page}: {script} {option}' for option in options
                     if not re.search(re.escape(option) + r'(?![\w-])', accepted)]
    assert not problems, f'commands or options that the tools do not have: {problems}'


SELF = osp.relpath(__file__, ROOT)
TEXT_SUFFIXES = ('.py', '.md', '.sh', '.txt', '.yml', '.yaml', '.cfg', '.ini', '.toml', '.cff',
                 '.json', '')


def shipped_text_files() -> List[str]:
    """Git-tracked files with a text suffix (or none, e.g. ``.ci/run``), repository-relative."""
    try:
        listed = subprocess.run(['git', 'ls-files', '-z'], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.split('\0')
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f'not a git checkout: {error}')
    return [p for p in listed if p and osp.splitext(p)[1] in TEXT_SUFFIXES
            and osp.isfile(osp.join(ROOT, p))]


# A cited section: ``docs/kernels.md, "Chunked scan"``, ``(README, "Resuming")`` or, in a page,
# ``[stack.md](stack.md), "Checkpoint loading"``.
CITATION = re.compile(r'(?:\b(README|docs/[\w-]+\.md)|\]\(([\w./-]+\.md)\)),?\s*\(?"([^"\n]+)"')


def headings(path: str) -> List[str]:
    with open(path, encoding='utf-8') as f:
        return [line.lstrip('#').strip() for line in f if re.match(r'#+ ', line)]


def test_cited_files_and_sections_exist():
    """A page a shipped file cites (``docs/...``) exists, and where it names a section in
    quotes (``docs/x.md, "Title"``, ``(README, "Title")``), the page has a heading that starts
    with that title."""
    problems = []
    pages = {osp.relpath(p, ROOT) for p in PAGES}
    for path in sorted(set(shipped_text_files()) - {SELF} | pages):
        with open(osp.join(ROOT, path), encoding='utf-8', errors='replace') as f:
            text = f.read()
        for match in re.finditer(r'\b(?:docs/[\w-]+\.md|benchmarks/NOTES\.md)', text):
            if path not in pages and not osp.exists(osp.join(ROOT, match.group(0))):
                problems.append(f'{path}: {match.group(0)} does not exist')   # pages: above
        for from_root, relative, section in CITATION.findall(text):
            page = (osp.join(ROOT, 'README.md') if from_root == 'README' else
                    osp.join(ROOT, from_root) if from_root else
                    osp.join(ROOT, osp.dirname(path), relative))
            if osp.exists(page) and not any(h.startswith(section) for h in headings(page)):
                problems.append(f'{path}: no section "{section}" in {osp.relpath(page, ROOT)}')
    assert not problems, f'citations of missing pages or sections: {sorted(set(problems))}'


BENCHMARKS = osp.join(ROOT, 'docs', 'benchmarks.md')
ARCHS = {'T': 'tiny', 'S': 'small', 'B': 'base'}


def test_readme_flop_table_matches_docs_results():
    results = results_table()
    readme = table(README, '| model | params (published)')
    assert len(readme) == 3, readme
    for row in readme:
        family = row[0].split(' T / S / B')[0]
        params, params_published = re.match(r'(.*) \((.*)\)$', row[1]).groups()
        flops, flops_published = re.match(r'(.*) \((.*)\)$', row[2]).groups()
        for i, size in enumerate('TSB'):
            want = results[f'{family} {size}']
            assert params.split(' / ')[i] == want[2] + 'M', (row, want)
            assert params_published.split(' / ')[i] == want[3], (row, want)
            assert flops.split(' / ')[i] == want[4], (row, want)
            assert flops_published.split(' / ')[i] == want[5], (row, want)
            assert f'{float(want[4]) / float(want[5]):.3f}' == want[6], want


def test_docs_results_parameters_and_sasf_flops_match_the_code(monkeypatch):
    """T's parameter counts, classifier and backbone, built on the meta device (no memory,
    no init; S and B are built, slower, in tests/configs/test_configs.py against the published
    counts), and every row's SASF column from the release's formula at its input size."""
    # The trunk reads its drop-path rates with linspace(...).tolist(), which needs data.
    monkeypatch.setattr(torch, 'linspace', functools.partial(torch.linspace, device='cpu'))
    from mmspatialmamba.analysis import sasf_flops
    from mmspatialmamba.models import SpatialMamba, SpatialMambaClassifier
    from mmspatialmamba.models.trunk import ARCH_SETTINGS

    with torch.device('meta'):
        models = {'ImageNet': SpatialMambaClassifier(arch='tiny'), 'backbone': SpatialMamba()}
    params = {k: f'{sum(p.numel() for p in m.parameters()) / 1e6:.2f}' for k, m in models.items()}
    rows = results_table()
    assert rows['ImageNet T'][2] == params['ImageNet'], rows['ImageNet T']
    for name in ('Mask R-CNN T', 'UperNet T'):
        assert rows[name][7].split(' / ')[0] == params['backbone'], rows[name]
    for name, row in rows.items():
        settings = ARCH_SETTINGS[ARCHS[name.rsplit(' ', 1)[1]]]
        height, width = (int(v) for v in row[1].split(' x '))
        sasf = sum(depth * sasf_flops(1, 2 * settings['dims'] * 2 ** i,
                                      (height >> (i + 2)) * (width >> (i + 2)))['total']
                   for i, depth in enumerate(settings['depths']))
        assert f'{sasf / 1e9:.{len(row[8].split(".")[1])}f}' == row[8], (row, sasf)


def test_readme_quotes_the_docs_numbers():
    """Every number of the README's quick-start and CPU-speed lines is in the docs' tables."""
    readme, results = page_text(README), page_text(RESULTS)
    assert '## Quick start' in readme and '## Quick start' in results
    quick = readme.split('## Quick start')[1].split('\n## ')[0]
    quick_numbers = re.findall(r'\b\d+\.\d+\b', quick)
    assert quick_numbers, 'the README quotes no quick-start numbers'
    docs_quick = results.split('## Quick start')[1]
    assert [n for n in quick_numbers if n not in docs_quick] == []
    cpu = re.search(r'\*\*CPU speed\*\*(.*?)(?:\n- |\n\n)', readme, flags=re.S)
    assert cpu, 'the README has no "**CPU speed**" line in its results'
    ratios = re.findall(r'\d+\.\d+x', cpu.group(1))
    assert ratios, 'the README quotes no CPU ratios'
    benchmarks = page_text(BENCHMARKS)
    assert [r for r in ratios if r[:-1] not in benchmarks] == []


# Words about how the project was made, and names that merely contain them.
MAKING = re.compile(r'\bsessions?\b|\bissues? ?#?\d|\blent\b|\bdevice tool\b|\bthis VM\b|'
                    r'\bowed\b|\bseen once\b|\b20\d\d-\d\d-\d\d\b', re.I)
ALLOWED = re.compile(r'InferenceSession|SessionOptions|sess_options|date-released: \S+')


def prose_lines(path: str, text: str) -> Iterator[Tuple[int, str]]:
    """(line number, text) of a file's prose: for Python, its comments and string literals
    other than a bare name (``'session'`` as pytest's scope is a name); else every line."""
    if not path.endswith('.py'):
        yield from enumerate(text.splitlines(), 1)
        return
    kinds = {tokenize.COMMENT, tokenize.STRING, getattr(tokenize, 'FSTRING_MIDDLE', -1)}
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type in kinds and not re.fullmatch(r"[rbuf]*(['\"])\w+\1", token.string):
            for offset, line in enumerate(token.string.splitlines()):
                yield token.start[0] + offset, line


def making_words(path: str, text: str) -> List[str]:
    """``path:line: text`` for each prose line of a file that speaks of the project's making."""
    return [f'{path}:{number}: {line.strip()}' for number, line in prose_lines(path, text)
            if MAKING.search(ALLOWED.sub('', line))]


def test_making_words_are_found_and_names_are_not():
    text = ('import onnxruntime as ort\n'
            '# seen once in CI\n'
            'session = ort.InferenceSession(path, sess_options=ort.SessionOptions())\n'
            "@pytest.fixture(scope='session')\n"
            'def f():\n'
            '    """As measured in this session (issue 12), not on a lent GPU."""\n'
            "    return 'allowed', 'never owed'\n")
    assert making_words('x.py', text) == [
        'x.py:2: # seen once in CI',
        'x.py:6: """As measured in this session (issue 12), not on a lent GPU."""',
        "x.py:7: 'never owed'"]
    assert making_words('x.md', 'ONNX Runtime InferenceSession\nissue #9: done on this VM\n') \
        == ['x.md:2: issue #9: done on this VM']


def test_no_shipped_file_speaks_of_the_making():
    found = []
    for path in shipped_text_files():
        if path == SELF:   # names the words it searches for
            continue
        with open(osp.join(ROOT, path), encoding='utf-8', errors='replace') as f:
            found += making_words(path, f.read())
    assert not found, ('shipped files should speak to users about the software as it is, not '
                       'about how it was made (say "not yet measured on a GPU", "on a 2-core '
                       'x86 machine"):\n' + '\n'.join(found))
