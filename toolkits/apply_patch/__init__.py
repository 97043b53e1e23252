"""apply_patch: the V4A patch tool gpt-oss was trained on (Codex's ``apply_patch``).

Public surface:

- :class:`ApplyPatchToolkit` - ``functions.apply_patch`` for the agent loop.
- :func:`apply_patch` - apply patch text to a folder: ``apply_patch(text, "work") -> PatchResult``.
- :func:`make_patch` / :func:`diff_files` - write V4A patches from two versions of files.
- :func:`parse_patch` - the parser alone; :class:`Workspace` - the path jail.
"""

from __future__ import annotations

from toolkits.apply_patch.api import PatchPlan as PatchPlan
from toolkits.apply_patch.api import apply_patch as apply_patch
from toolkits.apply_patch.api import commit_plan as commit_plan
from toolkits.apply_patch.api import plan_patch as plan_patch
from toolkits.apply_patch.api import update_text as update_text
from toolkits.apply_patch.diff import diff_files as diff_files
from toolkits.apply_patch.diff import make_patch as make_patch
from toolkits.apply_patch.errors import HunkMismatch as HunkMismatch
from toolkits.apply_patch.errors import PatchError as PatchError
from toolkits.apply_patch.errors import PatchSyntaxError as PatchSyntaxError
from toolkits.apply_patch.errors import PathRefused as PathRefused
from toolkits.apply_patch.instructions import INSTRUCTIONS as INSTRUCTIONS
from toolkits.apply_patch.model import ChangeKind as ChangeKind
from toolkits.apply_patch.model import FileChange as FileChange
from toolkits.apply_patch.model import Patch as Patch
from toolkits.apply_patch.model import PatchResult as PatchResult
from toolkits.apply_patch.parser import parse_patch as parse_patch
from toolkits.apply_patch.toolkit import ApplyPatchSession as ApplyPatchSession
from toolkits.apply_patch.toolkit import ApplyPatchToolkit as ApplyPatchToolkit
from toolkits.apply_patch.toolkit import extract_patch_text as extract_patch_text
from toolkits.apply_patch.workspace import Workspace as Workspace
