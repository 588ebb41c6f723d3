"""Serve the explorer for the browser test: ``python _serve.py STORE PORT``.

Registers two test analyses first (one slow, one that raises), then serves on 127.0.0.1.
"""
import sys
import time

import analyses
import app
from analyses.base import Result

analyses.register("app_test_slow", lambda run, member=0: (time.sleep(1.0), Result(summary={"answer": 42.0}))[1])
analyses.register("app_test_raises", lambda run, member=0: 1 / 0)

if __name__ == "__main__":
    app.run(sys.argv[1], host="127.0.0.1", port=int(sys.argv[2]))
