"""The persistent interpreter, the same suite for every sandbox kind."""

from __future__ import annotations

import pytest

ISOLATED = ["docker", "bubblewrap"]
ALL = [*ISOLATED, "local"]

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("kind", ALL)
async def test_state_value_and_trimmed_traceback(make_box, kind: str) -> None:
    async with make_box(kind) as box:
        first = await box.exec_code("import math\nx = 41\nprint('hi')\nx + 1", timeout=10)
        assert (first.stdout, first.value, first.error) == ("hi\n", "42", None)
        second = await box.exec_code("def f():\n    return 1 / 0\nmath.floor(x + 0.5)", 10)
        assert second.value == "41"
        third = await box.exec_code("f()", 10)
        assert third.error is not None and third.error.startswith("Traceback")
        assert "interpreter.py" not in third.error and "<cell-" in third.error
        assert third.error.rstrip().endswith("ZeroDivisionError: division by zero")
        syntax = await box.exec_code("def (", 10)
        assert syntax.error is not None and "SyntaxError" in syntax.error
        assert (await box.exec_code("None", 10)).value is None


@pytest.mark.parametrize("kind", ALL)
async def test_timeout_interrupts_and_keeps_state(make_box, kind: str) -> None:
    async with make_box(kind) as box:
        await box.exec_code("kept = [1, 2, 3]", 10)
        slow = await box.exec_code("import time\nprint('start')\ntime.sleep(30)", timeout=0.5)
        assert slow.timed_out and not slow.restarted
        assert slow.stdout == "start\n"
        assert "TimeoutError: execution timed out after 0.5 seconds" in (slow.error or "")
        assert (await box.exec_code("sum(kept)", 10)).value == "6"


@pytest.mark.parametrize("kind", ALL)
async def test_code_ignoring_the_interrupt_gets_a_new_interpreter(make_box, kind: str) -> None:
    async with make_box(kind, kill_grace_s=0.5) as box:
        await box.exec_code("lost = 1", 10)
        stuck = await box.exec_code(
            "while True:\n    try:\n        sum(range(10**6))\n    except BaseException:\n"
            "        pass", timeout=0.3)
        assert stuck.timed_out and stuck.restarted
        gone = await box.exec_code("lost", 10)
        assert gone.error is not None and "NameError" in gone.error
        assert (await box.exec_code("1 + 1", 10)).value == "2"


@pytest.mark.parametrize("kind", ALL)
async def test_crash_restarts_and_says_so(make_box, kind: str) -> None:
    async with make_box(kind) as box:
        await box.exec_code("lost = 1", 10)
        crashed = await box.exec_code("import os\nos._exit(7)", 10)
        assert crashed.restarted and not crashed.timed_out
        assert crashed.crash is not None and "7" in crashed.crash
        assert "NameError" in ((await box.exec_code("lost", 10)).error or "")


@pytest.mark.parametrize("kind", ALL)
async def test_output_is_capped_inside_the_sandbox(make_box, kind: str) -> None:
    async with make_box(kind) as box:
        flood = await box.exec_code("import os, sys\nwhile True:\n    print('x' * 1000)\n"
                                    "    os.write(2, b'e' * 1000)", timeout=1.0)
        assert flood.timed_out and not flood.restarted
        assert len(flood.stdout) == 4_000 and flood.stdout_dropped > 100_000
        assert len(flood.stderr) == 4_000 and flood.stderr_dropped > 0
        child = await box.exec_code("import subprocess\n"
                                    "subprocess.run(['echo', 'from a child'])", 10)
        assert child.stdout == "from a child\n"


@pytest.mark.parametrize("kind", ALL)
async def test_files_written_and_put(make_box, kind: str) -> None:
    async with make_box(kind) as box:
        await box.put_file("in/data.csv", b"a,b\n1,2\n")
        result = await box.exec_code(
            "import os\nos.chdir('" + box.data_dir + "')\n"
            "open('out.txt', 'w').write(open('in/data.csv').read().upper())\n"
            "os.symlink('/etc/passwd', 'link')\nos.remove('in/data.csv')", 10)
        assert result.error is None
        assert [(f.path, f.data) for f in result.files] == [("out.txt", b"A,B\n1,2\n")]
        assert result.deleted == ("in/data.csv",)


@pytest.mark.parametrize("kind", ISOLATED)
async def test_data_dir_is_mnt_data_and_root_is_read_only(make_box, kind: str) -> None:
    async with make_box(kind) as box:
        result = await box.exec_code(
            "import os\nopen('/mnt/data/a.txt', 'w').write('x')\n"
            "try:\n    open('/usr/evil', 'w')\nexcept OSError as e:\n    print(type(e).__name__)\n"
            "os.getcwd(), os.getuid() != 0", 10)
        assert result.value == "('/mnt/data', True)"
        assert result.stdout.strip() in {"PermissionError", "OSError"}
        assert [f.path for f in result.files] == ["a.txt"]
