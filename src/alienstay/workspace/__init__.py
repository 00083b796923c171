"""The workspace: one folder a run, its tables, its files and its lock."""
