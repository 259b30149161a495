"""Package metadata: one version source, the license, and a valid CITATION.cff."""
import glob
import os.path as osp
import subprocess
import sys
from importlib.metadata import version

import yaml

import mmspatialmamba

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def test_installed_version_is_the_package_version():
    """setup.py reads mmspatialmamba/version.py, so pip's metadata and the package agree
    (tools/setup_env.sh reinstalls when version.py changes)."""
    assert version('mmspatialmamba') == mmspatialmamba.__version__


def test_the_version_is_written_once():
    quoted = (f"'{mmspatialmamba.__version__}'", f'"{mmspatialmamba.__version__}"')
    files = ['setup.py', 'CITATION.cff', *glob.glob('mmspatialmamba/**/*.py', root_dir=ROOT,
                                                    recursive=True)]
    holders = [path for path in files
               if any(q in open(osp.join(ROOT, path)).read() for q in quoted)]
    assert holders == ['mmspatialmamba/version.py']


def test_setup_py_reads_the_version_file():
    result = subprocess.run([sys.executable, 'setup.py', '--version'], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == mmspatialmamba.__version__


def test_license_is_apache_2():
    text = open(osp.join(ROOT, 'LICENSE')).read()
    assert 'Apache License\n                           Version 2.0, January 2004' in text
    assert 'END OF TERMS AND CONDITIONS' in text and '[yyyy]' not in text


def _has_name(person: dict) -> bool:
    return bool(person.get('family-names') or person.get('name'))


def test_citation_cff_is_valid_and_cites_the_paper():
    with open(osp.join(ROOT, 'CITATION.cff')) as f:
        cff = yaml.safe_load(f)
    assert cff['cff-version'] == '1.2.0'
    for key in ('message', 'title'):
        assert isinstance(cff[key], str) and cff[key].strip(), key
    assert cff['authors'] and all(_has_name(a) for a in cff['authors'])
    assert cff.get('license') == 'Apache-2.0'
    assert 'version' not in cff, 'the version is written only in mmspatialmamba/version.py'
    paper = cff['preferred-citation']
    assert paper['type'] == 'conference-paper' and paper['year'] == 2025
    assert paper['title'].startswith('Spatial-Mamba: Effective Visual State Space Models')
    assert [a['family-names'] for a in paper['authors']] == ['Xiao', 'Li', 'Zhang', 'Meng',
                                                             'Zhang']
    assert all(_has_name(a) and a.get('given-names') for a in paper['authors'])
    assert 'ICLR' in paper['conference']['name']
    assert any('2410.15091' in i['value'] for i in paper['identifiers'])
