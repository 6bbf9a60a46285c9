"""Awkward names (quotes, backslashes, non-ASCII) bake correctly and reach the README intact."""

import re
import subprocess
import sys

from conftest import bake

NAME = 'Zoë\'s "Quoted" \\ Prøject — 学习'
AUTHOR = 'O\'Brien "Bob" \\ Ünïcode'
DESCRIPTION = 'Trains on {braces}, "quotes" and back\\slashes: ok?'


def test_awkward_names_bake_and_show_up_intact(tmp_path):
    project = bake(tmp_path, project_name=NAME, author_name=AUTHOR, description=DESCRIPTION)
    assert re.fullmatch(r'[a-z0-9_]+', project.name), project.name
    readme = (project / 'README.md').read_text(encoding='utf-8')
    for text in (NAME, AUTHOR, DESCRIPTION):
        assert text in readme
    result = subprocess.run([sys.executable, '-m', 'ruff', 'check', '--no-cache', '.'], cwd=project,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    result = subprocess.run([sys.executable, '-c', 'import train, dataset, model, utils'], cwd=project,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
