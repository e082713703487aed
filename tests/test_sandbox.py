"""The sandbox with ordinary programs and its plain-data wire format (real subprocesses)."""

from __future__ import annotations

import collections
import math
import os
from pathlib import Path

import pytest

from evalsuite.errors import EXIT_USAGE, ConfigError, EvalsuiteError
from evalsuite.sandbox import (
    ALLOW_ENV,
    CodeExecutionNotAllowedError,
    TestSuite,
    execution_confirmed,
    isolation_report,
    require_execution_confirmed,
    run_program,
    run_programs,
    sandbox_info,
)
from evalsuite.sandbox._inside import decode, dumps, encode, loads

SQUARE = TestSuite(tests="assert f(2) == 4\nassert f(-3) == 9\n", entry_point="f")


# --- plain programs (the program is its own test) ---------------------------------------


def test_passing_program_passes() -> None:
    result = run_program("import math\nassert math.gcd(12, 18) == 6\nprint('ok')\n", timeout_s=5)
    assert (result.passed, result.status, result.detail) == (True, "passed", "")
    assert result.output == "ok\n" and result.seconds > 0


def test_failing_assertion_fails_with_reason() -> None:
    result = run_program("def f():\n    return 1\nassert f() == 2, 'wrong answer'\n", timeout_s=5)
    assert (result.passed, result.status) == (False, "failed")
    assert "AssertionError: wrong answer" in result.detail


def test_syntax_error_fails() -> None:
    result = run_program("def f(:\n    pass\n", timeout_s=5)
    assert result.status == "failed" and "SyntaxError" in result.detail


@pytest.mark.parametrize(
    "program", ["import sys\nsys.exit(0)\nassert False\n", "import os\nos._exit(0)\nassert False\n"]
)
def test_exiting_early_is_not_a_pass(program: str) -> None:
    assert run_program(program, timeout_s=5).status == "failed"


def test_run_programs_keeps_order() -> None:
    programs = [f"assert {i} != 2\n" for i in range(4)]
    assert [r.passed for r in run_programs(programs, workers=2, timeout_s=10)] == [
        True, True, False, True,
    ]


# --- programs scored by a trusted test suite -------------------------------------------


def test_a_correct_function_passes_and_a_wrong_one_fails() -> None:
    assert run_program("def f(x):\n    return x * x\n", tests=SQUARE).passed
    wrong = run_program("def f(x):\n    return x + 2\n", tests=SQUARE)
    assert wrong.status == "failed" and wrong.detail.startswith("AssertionError")


def test_types_survive_the_pipe() -> None:
    tests = TestSuite(
        tests=(
            "r = f()\n"
            "assert type(r) is tuple and r == (1, [2.5, None], {'a': {3}}, b'x', True)\n"
            "assert f.__name__ == 'f'\n"
        ),
        entry_point="f",
    )
    good = "def f():\n    return (1, [2.5, None], {'a': {3}}, b'x', True)\n"
    assert run_program(good, tests=tests).passed
    as_list = "def f():\n    return [1, [2.5, None], {'a': {3}}, b'x', True]\n"
    assert not run_program(as_list, tests=tests).passed


def test_generators_and_subclasses_compare_as_in_one_process() -> None:
    gen = "def f():\n    return (i for i in range(2))\n"
    assert run_program(gen, tests=TestSuite("assert list(f()) == [0, 1]\n", "f")).passed
    assert not run_program(gen, tests=TestSuite("assert f() == [0, 1]\n", "f")).passed
    counter = "from collections import Counter\ndef f():\n    return Counter('aab')\n"
    assert run_program(counter, tests=TestSuite("assert f() == {'a': 2, 'b': 1}\n", "f")).passed


def test_context_defines_helpers_and_errors_map_back() -> None:
    tests = TestSuite(
        context="def helper(x):\n    return x + 1\n",
        tests=(
            "assert helper(f(1)) == 3\n"
            "try:\n    f(-1)\nexcept ValueError as e:\n    assert 'negative' in str(e)\n"
            "else:\n    raise AssertionError('no error')\n"
        ),
        entry_point="f",
    )
    program = "def f(x):\n    if x < 0:\n        raise ValueError('negative')\n    return 2 * x\n"
    assert run_program(program, tests=tests).passed


def test_a_program_that_fails_to_load_fails_its_tests() -> None:
    result = run_program("raise RuntimeError('boom')\ndef f(x):\n    return x * x\n", tests=SQUARE)
    assert result.status == "failed" and "boom" in result.detail
    assert "not a function" in run_program("f = 3\n", tests=SQUARE).detail


# --- wire format -------------------------------------------------------------------------

VALUES = [
    None, True, 0, -(10**30), 1.5, float("inf"), "é\n", [1, [2]], (1, (2,)), {1, 2},
    frozenset({(1, 2)}), {"a": 1, 2: [3], (4,): None}, b"\x00\xff", complex(1, -2), (),
]


@pytest.mark.parametrize("value", VALUES, ids=[type(v).__name__ + str(i) for i, v in enumerate(VALUES)])
def test_wire_round_trip_keeps_value_and_type(value: object) -> None:
    back = decode(loads(dumps(encode(value))))
    assert back == value and type(back) is type(value)


def test_wire_keeps_nan() -> None:
    assert math.isnan(decode(loads(dumps(encode(float("nan"))))))  # type: ignore[arg-type]


class _AlwaysEqual(int):
    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = int.__hash__


def _round_trip(value: object) -> object:
    return decode(loads(dumps(encode(value))))


def test_subclasses_travel_as_their_plain_value_without_their_methods() -> None:
    back = _round_trip(_AlwaysEqual(3))
    assert type(back) is int and back == 3 and back != 4
    Point = collections.namedtuple("Point", "x y")
    assert type(_round_trip(Point(1, 2))) is tuple
    counts = _round_trip(collections.Counter("aab"))
    assert type(counts) is dict and counts == {"a": 2, "b": 1}
    assert _round_trip(range(1, 9, 3)) == range(1, 9, 3)


def test_iterators_arrive_as_iterators() -> None:
    back = _round_trip(x * x for x in range(3))
    assert back != [0, 1, 4] and list(back) == [0, 1, 4]  # type: ignore[call-overload]
    assert list(_round_trip(map(str, [1, 2]))) == ["1", "2"]  # type: ignore[call-overload]


@pytest.mark.parametrize(
    "value", [object(), len, [Path("x")], {1: object()}], ids=["object", "builtin", "path", "dict"]
)
def test_wire_refuses_anything_but_plain_data(value: object) -> None:
    with pytest.raises(TypeError, match="plain data only"):
        encode(value)


@pytest.mark.parametrize(
    "raw", [b'{"x": 1}\n', b'{"t": 1}\n', b'{"t": [], "s": []}\n', b"NaN\n", b'{"f": "1e999x"}\n']
)
def test_wire_rejects_malformed_messages(raw: bytes) -> None:
    with pytest.raises(ValueError):
        decode(loads(raw))


def test_a_sandbox_that_cannot_start_is_an_error_never_a_failure() -> None:
    from evalsuite.sandbox import SandboxError, raise_for_sandbox_errors
    from evalsuite.sandbox.core import _execute, _Limits

    broken = _execute("restricted", "pass\n", SQUARE, _Limits(), "/nonexistent/python3")
    assert (broken.passed, broken.status) == (False, "error")
    assert "could not start" in broken.detail
    fine = run_program("def f(x):\n    return x\n", tests=SQUARE)
    raise_for_sandbox_errors([fine])  # a failed program is not a sandbox error
    with pytest.raises(SandboxError, match="could not run 1 of 2") as err:
        raise_for_sandbox_errors([fine, broken])
    assert err.value.exit_code == EXIT_USAGE


# --- limits, info, opt-in ------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["timeout_s", "memory_mb", "disk_mb", "output_kb", "max_processes"])
def test_non_positive_limits_are_config_errors(limit: str) -> None:
    with pytest.raises(ConfigError, match=limit):
        run_program("pass\n", **{limit: 0})  # type: ignore[arg-type]


def test_isolation_report_says_what_is_in_force() -> None:
    report = isolation_report()
    info = sandbox_info()
    assert report["isolation"] == info.isolation
    assert {"network", "filesystem", "disk_quota", "processes", "verdict", "euid"} <= set(report)
    forced = os.environ.get("EVALSUITE_SANDBOX_ISOLATION", "auto") == "restricted"
    if os.geteuid() == 0 and not forced:  # CI runs as root: the full isolation must hold
        assert report["isolation"] == "namespaces", report["reason"]
        assert report["uid_separation"] is True


def test_opt_in_comes_from_the_run_not_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The library reads no environment variable: the CLI folds EVALSUITE_ALLOW_CODE_EXECUTION
    into the run spec, and the runner passes the decision down (confirmed_for_run)."""
    from evalsuite.sandbox import confirmed_for_run

    monkeypatch.delenv(ALLOW_ENV, raising=False)
    assert not execution_confirmed()
    with pytest.raises(CodeExecutionNotAllowedError) as err:
        require_execution_confirmed("unit tests")
    assert isinstance(err.value, EvalsuiteError) and err.value.exit_code == EXIT_USAGE
    message = str(err.value)
    assert "--allow-code-execution" in message and ALLOW_ENV in message
    assert "--confirm_run_unsafe_code" in message
    monkeypatch.setenv(ALLOW_ENV, "1")
    assert not execution_confirmed()  # a side channel no more
    with confirmed_for_run(True):
        assert execution_confirmed()
        require_execution_confirmed("unit tests")


def test_the_old_import_path_still_works() -> None:
    from evalsuite.tasks import code_exec

    assert code_exec.run_program is run_program and code_exec.TestSuite is TestSuite
    assert Path(code_exec.__file__).name == "code_exec.py"


def test_run_record_names_the_isolation_of_code_tasks(tmp_path: Path) -> None:
    """A run that executes model-written code records the sandbox's isolation; others don't."""
    from evalsuite.runner import RunSpec, _sandbox_record, plan

    data = Path(__file__).parent / "fixtures" / "data"
    code = plan(RunSpec(model="llada-tiny", tasks=("humaneval",), data_dir=data,
                        allow_code_execution=True, limit=1))
    record = _sandbox_record(code)
    assert record is not None and record.tasks == ("llada_humaneval",)
    assert record.isolation["isolation"] == sandbox_info().isolation and record.isolation["network"]
    plain = plan(RunSpec(model="llada-tiny", tasks=("gsm8k",), data_dir=data, limit=1))
    assert _sandbox_record(plain) is None
