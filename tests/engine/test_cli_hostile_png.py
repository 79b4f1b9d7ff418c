"""`python -m engine convert` (and `run`, which reads a PNG the same way) on hostile PNGs: an A1111
line that made the old settings regex backtrack for 35 s is converted at once, and a zTXt bomb is
refused with exit code 2 and a plain message (issue 20, defects 1 and 8)."""

import time
import zlib

import pytest

from engine.cli import main
from tests.server.test_hostile_inputs import png_chunk, png_with

pytestmark = pytest.mark.slow  # builds the whole built-in node registry (several seconds)


def test_converting_a_png_with_a_long_a1111_line_takes_no_time(tmp_path, capsys):
    (tmp_path / "warm.png").write_bytes(png_with(png_chunk(b"tEXt", b"parameters\0a dog\nSteps: 5")))
    (tmp_path / "long.png").write_bytes(png_with(png_chunk(b"tEXt", b"parameters\0a cat\n" + b"a" * 60_000)))
    assert main(["convert", str(tmp_path / "warm.png")]) == 0  # the node registry is built once, here
    capsys.readouterr()

    started = time.perf_counter()
    code = main(["convert", str(tmp_path / "long.png")])
    elapsed = time.perf_counter() - started

    assert code == 0 and elapsed < 5  # 35 s of backtracking (holding the GIL) before the fix
    assert '"text": "a cat\\naaaa' in capsys.readouterr().out


def test_an_a1111_text_over_the_limit_in_a_ztxt_chunk_is_refused_with_exit_code_2(tmp_path, capsys):
    text = b"a cat\n" + b"a" * (4 * 2**20)
    (tmp_path / "bomb.png").write_bytes(png_with(png_chunk(b"zTXt", b"parameters\0\0" + zlib.compress(text, 9))))

    assert main(["convert", str(tmp_path / "bomb.png")]) == 2
    captured = capsys.readouterr()
    assert "at most 65536 are read" in captured.err and "Traceback" not in captured.err and captured.out == ""
