"""schemathesis hooks for scripts/contract.sh.

- How to put an NDJSON body on the wire: `POST /v1/events` takes `application/x-ndjson`, whose
  schema in the document is the sequence of events (an array); it goes out one JSON value per
  line.
- A workaround for Debian's Python 3.11: hypothesis describes lambdas by parsing their module's
  source with `ast`, and CPython 3.11 can raise `SystemError: AST constructor recursion depth
  mismatch` when that happens deep in the stack (schemathesis's coverage phase). The
  description is only a label; without this, the whole operation is abandoned as an error.
"""

import json

import schemathesis
from hypothesis.internal import lambda_sources

_describe_lambda = lambda_sources._lambda_description


def _describe_lambda_or_give_up(f, *args, **kwargs):
    try:
        return _describe_lambda(f, *args, **kwargs)
    except SystemError:
        return "lambda: <unknown>"


lambda_sources._lambda_description = _describe_lambda_or_give_up


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    items = value if isinstance(value, list) else [value]
    return "".join(json.dumps(item) + "\n" for item in items).encode("utf-8")
