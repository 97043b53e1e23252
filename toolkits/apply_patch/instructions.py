"""The instructions the model reads about ``apply_patch``, and how the tool is declared.

The text is gpt-oss's ``gpt_oss/tools/apply_patch.md`` word for word (Apache-2.0, OpenAI): the
model was trained with it in the developer message, so its wording is part of the interface.
``gpt_oss/chat.py`` appends it to the developer instructions and declares one function tool,
``apply_patch``, described as "Patch a file", whose parameter is a bare string (Harmony renders
it as ``type apply_patch = (_: string) => any;``); the call's content is the raw patch text.
"""

from __future__ import annotations

from typing import Any

TOOL_NAME = "apply_patch"
TOOL_DESCRIPTION = "Patch a file"

#: The parameter schema of the reference declaration: a string, not an object.
PARAMETERS: dict[str, Any] = {
    "type": "string",
    "description": "Formatted patch code",
    "default": "*** Begin Patch\n*** End Patch\n",
}

INSTRUCTIONS = """\
When requested to perform coding-related tasks, you MUST adhere to the following criteria when executing the task:

- Use `apply_patch` to edit files.
- If completing the user's task requires writing or modifying files:
  - Your code and final answer should follow these _CODING GUIDELINES_:
    - Avoid unneeded complexity in your solution. Minimize program size.
    - Keep changes consistent with the style of the existing codebase. Changes should be minimal and focused on the task.
    - NEVER add copyright or license headers unless specifically requested.
- Never implement function stubs. Provide complete working implementations.

§ `apply_patch` Specification

Your patch language is a stripped\u2011down, file\u2011oriented diff format designed to be easy to parse and safe to apply. You can think of it as a high\u2011level envelope:

*** Begin Patch
[ one or more file sections ]
*** End Patch

Within that envelope, you get a sequence of file operations.
You MUST include a header to specify the action you are taking.
Each operation starts with one of three headers:

*** Add File: <path> - create a new file. Every following line is a + line (the initial contents).
*** Delete File: <path> - remove an existing file. Nothing follows.
*** Update File: <path> - patch an existing file in place (optionally with a rename).

May be immediately followed by *** Move to: <new path> if you want to rename the file.
Then one or more \u201chunks\u201d, each introduced by @@ (optionally followed by a hunk header).
Within a hunk each line starts with:

+ for inserted text,

- for removed text, or
  space ( ) for context.
  At the end of a truncated hunk you can emit *** End of File.

Patch := Begin { FileOp } End
Begin := "*** Begin Patch" NEWLINE
End := "*** End Patch" NEWLINE
FileOp := AddFile | DeleteFile | UpdateFile
AddFile := "*** Add File: " path NEWLINE { "+" line NEWLINE }
DeleteFile := "*** Delete File: " path NEWLINE
UpdateFile := "*** Update File: " path NEWLINE [ MoveTo ] { Hunk }
MoveTo := "*** Move to: " newPath NEWLINE
Hunk := "@@" [ header ] NEWLINE { HunkLine } [ "*** End of File" NEWLINE ]
HunkLine := (" " | "-" | "+") text NEWLINE

A full patch can combine several operations:

*** Begin Patch
*** Add File: hello.txt
+Hello world
*** Update File: src/app.py
*** Move to: src/main.py
@@ def greet():
-print("Hi")
+print("Hello, world!")
*** Delete File: obsolete.txt
*** End Patch

It is important to remember:

- You must include a header with your intended action (Add/Delete/Update)
- You must prefix new lines with `+` even when creating a new file
"""
