"""A training machine may hold torch and nothing else of the play stack (a GPU box): without
Gymnasium and pygame the package imports, data is generated and a stage trains; only the env
classes are missing, with a clear error."""
from __future__ import annotations

import subprocess
import sys
import textwrap

# Run in a fresh interpreter where `gymnasium` and `pygame` cannot be imported.
BLOCK = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('gymnasium', 'pygame'):
            raise ModuleNotFoundError(f'No module named {name!r}', name=name)
        return None
sys.meta_path.insert(0, Block())
"""


def run_blocked(code: str, cwd) -> subprocess.CompletedProcess:
    script = BLOCK + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=cwd)


def test_data_and_a_training_stage_run_without_gymnasium_or_pygame(tmp_path):
    result = run_blocked("""
        import worldsim
        from worldsim.cli import main
        main(['data', 'generate', '--world', 'explorer', '--frames', '300', '--size', '32', '--out', 'data', '--quiet'])
        main(['train', 'autoencoder', '--size', 'tiny', '--data', 'data', '--out', 'ae', '--set', 'steps=2',
              '--set', 'batch_size=2', '--set', 'progress=false'])
        import worldsim.envs.explorer as explorer
        print('batch', type(explorer.ExplorerBatch(2)).__name__)
        try:
            explorer.ExplorerEnv
        except ModuleNotFoundError as error:
            print('env', error.name)
        print('blocked', sorted(m for m in ('gymnasium', 'pygame') if m in sys.modules))
    """, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "ae" / "final" / "autoencoder.safetensors").is_file()
    lines = result.stdout.splitlines()
    assert "batch ExplorerBatch" in lines and "env gymnasium" in lines and "blocked []" in lines
