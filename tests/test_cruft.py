"""Template updates with cruft: create from a local git copy of the template, change the template, update."""

import shutil
import subprocess
import sys

from conftest import TEMPLATE

CRUFT = [sys.executable, '-m', 'cruft']  # the venv's, also when its bin/ is not on PATH
GIT = ['git', '-c', 'user.name=test', '-c', 'user.email=test@example.com']
TRACKED = ['cookiecutter.json', 'hooks', 'local_extensions.py', '{{cookiecutter.project_slug}}']


def sh(*command, cwd):
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, ' '.join(command) + '\n' + result.stdout + result.stderr
    return result.stdout


def test_cruft_create_then_update_applies_a_template_change_and_keeps_user_edits(tmp_path):
    template = tmp_path / 'template'
    template.mkdir()
    for name in TRACKED:
        source = TEMPLATE / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, template / name)
    sh(*GIT, 'init', '-q', cwd=template)
    sh(*GIT, 'add', '-A', cwd=template)
    sh(*GIT, 'commit', '-qm', 'template v1', cwd=template)

    created = sh(*CRUFT, 'create', str(template), '--no-input', '--output-dir', str(tmp_path / 'out'), cwd=tmp_path)
    project = tmp_path / 'out' / 'my_training_project'
    assert (project / '.cruft.json').is_file() and not (project / 'tests' / 'test_data_layout.py').exists()
    sh(*GIT, 'init', '-q', cwd=project)
    (project / 'model.py').write_text((project / 'model.py').read_text() + '\n# my own change\n')
    sh(*GIT, 'add', '-A', cwd=project)
    sh(*GIT, 'commit', '-qm', 'my project', cwd=project)

    readme = template / '{{cookiecutter.project_slug}}' / 'README.md'
    readme.write_text(readme.read_text() + '\nA line the template added later.\n')
    sh(*GIT, 'commit', '-qam', 'template v2', cwd=template)
    updated = sh(*CRUFT, 'update', '--skip-apply-ask', cwd=project)
    assert 'Next (README.md has the rest)' not in created + updated  # cruft bakes in temporary folders: no cd there

    assert 'A line the template added later.' in (project / 'README.md').read_text()
    assert (project / 'model.py').read_text().endswith('# my own change\n')
    assert not (project / 'tests' / 'test_data_layout.py').exists()  # the post-gen hook ran again, harmlessly
    sh(*CRUFT, 'check', cwd=project)
