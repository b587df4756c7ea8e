"""The `worldsim` command answers `--help` without importing torch (it would take seconds)."""
import subprocess
import sys


def test_building_the_parser_does_not_import_torch():
    code = "import sys, worldsim.cli as cli; cli.build_parser(); print(sorted(m for m in ('torch', 'pygame') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
