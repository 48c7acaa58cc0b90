"""learn2learn, imported quietly.

learn2learn 0.2.0 imports gym 0.26, which prints a multi-line deprecation notice to stderr
on import. benchsuite uses no gym code, and the notice would drown one-line CLI messages,
so the import is made with stderr captured; anything other than that notice is passed on.
"""

import contextlib
import io
import sys

_captured = io.StringIO()
with contextlib.redirect_stderr(_captured):
    import learn2learn  # noqa: E402

_GYM_NOTICE = "Gym has been unmaintained"
if _captured.getvalue() and _GYM_NOTICE not in _captured.getvalue():
    sys.stderr.write(_captured.getvalue())

__all__ = ["learn2learn"]
