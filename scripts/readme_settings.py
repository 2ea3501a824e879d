"""Rewrite the settings table in README.md from streams.settings (run after adding a setting)."""

from __future__ import annotations

import re
from pathlib import Path

from streams.settings import settings_table

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN, END = "<!-- settings:begin -->", "<!-- settings:end -->"

text = README.read_text()
pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
README.write_text(pattern.sub(f"{BEGIN}\n{settings_table()}\n{END}", text))
print(f"updated {README}")
