"""Remove what the answers did not select. Idempotent, and touches nothing outside the project folder."""

import json
from pathlib import Path

ANSWERS = json.loads(r"""
{{ cookiecutter | tojson }}
""".strip())

# Files that only make sense for some answers: {path: predicate on the answers}.
KEEP_IF = {
    'tests/test_data_layout.py': lambda a: a['dataset'] != 'synthetic',
}

if __name__ == '__main__':
    project = Path.cwd()
    for relative, keep in KEEP_IF.items():
        path = project / relative
        if not keep(ANSWERS) and path.is_file():
            path.unlink()
