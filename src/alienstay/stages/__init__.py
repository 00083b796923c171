"""The stages: one module a stage, each `run(ws: Workspace, settings: <Stage>Settings) -> <Stage>Summary`.

The CLI, `demo`, the notebook and the Ray engine call these and nothing else. A stage reads its
inputs from the workspace (`ws.require(...)` names the stage to run when one is missing),
holds the workspace lock while it writes, and returns a small dataclass the caller prints.
Keyword-only arguments after `settings` are progress hooks, never settings.

Adding a stage: a module here with its Settings, Summary and `run`, a line in STAGES, and a
thin Typer command in cli.py that builds the Settings and prints the Summary.
"""

from __future__ import annotations

# The data flow, in order: the name a user types -> the module that runs it.
STAGES: dict[str, str] = {
    "ingest folder": "alienstay.stages.ingest_folder",
    "ingest hotels50k": "alienstay.stages.ingest_hotels50k",
    "preprocess": "alienstay.stages.preprocess",
    "stats": "alienstay.stages.stats",
    "tag": "alienstay.stages.tag",
    "caption": "alienstay.stages.caption",
    "analyse": "alienstay.stages.analyse",
    "cluster": "alienstay.stages.cluster",
    "index": "alienstay.stages.index",
    "retrieval": "alienstay.stages.retrieval",
    "edit": "alienstay.stages.edit",
    "persona": "alienstay.stages.persona",
    "report": "alienstay.stages.report",
}
