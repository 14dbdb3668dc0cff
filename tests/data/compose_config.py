"""`docker-compose config` (Debian's docker-compose v1) for many files in one process.

Run with the interpreter of the `docker-compose` script. Each line of stdin is a JSON
request {"file": PATH, "dir": PROJECT_DIR}; each answer is one JSON line on stdout:
{"ok": true, "out": YAML} or {"ok": false, "err": TEXT}. A request does what
`docker-compose -f PATH --project-directory DIR config` does, run in DIR with only PATH
and HOME in the environment: the same functions of compose's own (the command's
`get_config_from_options` and `serialize_config`), without a Python start-up and
compose's imports per file (about 0.5 CPU-seconds each). Written for this project.
"""
import io
import json
import logging
import os
import sys
import traceback

from compose.cli.command import get_config_from_options
from compose.config.serialize import serialize_config


def main():
    kept = {key: os.environ[key] for key in ("PATH", "HOME") if key in os.environ}
    os.environ.clear()
    os.environ.update(kept)
    messages = io.StringIO()
    handler = logging.StreamHandler(messages)
    handler.setFormatter(logging.Formatter())  # as the command's, not on a terminal
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for line in sys.stdin:
        request = json.loads(line)
        messages.seek(0)
        messages.truncate()
        try:
            os.chdir(request["dir"])
            options = {"--file": [request["file"]], "--project-directory": request["dir"]}
            config = get_config_from_options(".", options, {"--no-interpolate": False})
            answer = {"ok": True, "out": serialize_config(config, None, True) + "\n"}
        except Exception as error:  # what the command prints for it, then fails
            message = getattr(error, "msg", None)
            if message is None:
                message = traceback.format_exc()
            logging.error(message)
            answer = {"ok": False, "err": messages.getvalue()}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
