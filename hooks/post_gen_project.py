"""Remove what the answers did not select, and tool caches copied from a local template checkout; then
print the commands to run next. Idempotent, and touches nothing outside the project folder."""

import json
import shlex
import shutil
from pathlib import Path

ANSWERS = json.loads(r"""
{{ cookiecutter | tojson }}
""".strip())

# Files that only make sense for some answers: {path: predicate on the answers}.
KEEP_IF = {
    'tests/test_data_layout.py': lambda a: a['dataset'] != 'synthetic',
}
# Made by running Python, pytest or ruff inside the template folder; never part of a project.
CACHE_DIRS = ('__pycache__', '.pytest_cache', '.ruff_cache')
QUICK_START = '## Quick start\n\n```bash\n'


def next_steps(project):
    """What to run next: the baked README's Quick start commands, after a cd into the project."""
    _, found, rest = (project / 'README.md').read_text(encoding='utf-8').partition(QUICK_START)
    commands = rest.split('```', 1)[0] if found else ''
    return f'Made {project}. Next (README.md has the rest):\n\ncd {shlex.quote(str(project))}\n{commands}'

if __name__ == '__main__':
    project = Path.cwd()
    for relative, keep in KEEP_IF.items():
        path = project / relative
        if not keep(ANSWERS) and path.is_file():
            path.unlink()
    for folder in (project, project / 'tests'):  # the template's folders, not a user's .venv or data
        for name in CACHE_DIRS:
            cache = folder / name
            if cache.is_dir() and not cache.is_symlink():
                shutil.rmtree(cache)
    if '_output_dir' in ANSWERS:  # set by cookiecutter itself; cruft bakes into temporary folders, to diff them
        print(next_steps(project))
