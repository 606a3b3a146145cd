"""The README stays true: the two commands come first, and every setting is in its table."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_environment_variable_the_settings_read_is_documented() -> None:
    settings = (ROOT / "releasegate" / "settings.py").read_text()
    readme = (ROOT / "README.md").read_text()

    names = set(re.findall(r'env_(?:str|bool|int|list|choice)\(\s*"([A-Z0-9_]+)"', settings))

    assert len(names) > 30
    assert sorted(name for name in names if f"`{name}`" not in readme) == []


def test_the_two_commands_come_first() -> None:
    readme = (ROOT / "README.md").read_text()

    first_section = readme.split("\n## ")[1]
    assert first_section.startswith("The two commands")
    assert "make run" in first_section
    assert "make test" in first_section
