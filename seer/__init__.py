"""The `seer` command: the composition root; imports the rooms lazily."""
