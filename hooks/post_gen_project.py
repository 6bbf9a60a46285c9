"""Remove what the answers did not select, and tool caches copied from a local template checkout.
Idempotent, and touches nothing outside the project folder."""

import json
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
