"""rampup as an extra adapter of the peer benchmark (../shared/bench-peers, EXTRA_ADAPTERS hook).

``sdk_adapters`` loads this file and calls ``setup(tmpdir)``; rampup's rows are then timed in
the same interleaved rounds as the peers' (tables 1a/1b, 2, 5 and 8 of its RESULTS.md)::

    # from the root of a rampup checkout, with the peer benchmark checked out beside it
    ~/.cache/rampup-peers/venv/bin/pip install -e .
    EXTRA_ADAPTERS="$PWD/bench/rampup_adapter.py" RUNS=1 SKIP_HTTP=1 OUT=/tmp/rampup/peers \\
        sh -c 'cd ../shared/bench-peers && ./run_all.sh'

The three flags are defined in a TOML file written to ``tmpdir`` and loaded with
``rampup.load`` (a Snapshot: no watcher thread, nothing in the background):

  full[c](user)  Subject(user_id, {"email": email}) + snapshot.evaluate(key, subject).value
  pre[c](ctx)    snapshot.evaluate(key, ctx).value, ctx = make_ctx(user) built ahead
  extra_full[c]  Flags(snapshot, Subject(...)).enabled(key): the per-request object a
                 middleware creates (reported as "new-instance-per-request" in section 8)

``.value`` is the served bool (the peers' calls return bools too); a Decision object itself
is always truthy, so the semantics check needs the value.
"""

from __future__ import annotations

import os
from typing import Any

NAME = "rampup"

FLAGS_TOML = """\
version = 1

[segments.example-com]
description = "e-mail at example.com"
conditions = [{ attribute = "email", op = "ends_with", value = "@example.com" }]

[flags.flag_a]
description = "A: on for everyone"
default = "on"

[flags.flag_b]
description = "B: 10 % rollout, sticky on the user id"

[[flags.flag_b.rules]]
split = { on = 10, off = 90 }

[flags.flag_c]
description = "C: example.com e-mails on, else a 10 % rollout"

[[flags.flag_c.rules]]
segments = ["example-com"]
serve = "on"

[[flags.flag_c.rules]]
split = { on = 10, off = 90 }
"""


def setup(tmpdir: str) -> Any:
    import sdk_adapters as sa  # the harness's module; it is importing this file

    import rampup
    from rampup import Flags, Subject

    path = os.path.join(tmpdir, "rampup_flags.toml")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(FLAGS_TOML)
    snapshot = rampup.load(path)
    evaluate = snapshot.evaluate
    a = sa.Adapter(
        NAME,
        "rampup",
        notes="rampup.load(TOML file) -> Snapshot (no watcher thread); per call "
        "snapshot.evaluate(key, Subject(id, {email})).value. Bucketing: BLAKE2b-64 of "
        "'salt:key' mod 10,000 (standard library). extra 'new-instance-per-request' rows: "
        "Flags(snapshot, Subject(...)).enabled(key), the per-request object of the middleware.",
    )

    def mk(key: str) -> tuple[Any, Any, Any]:
        def full(u: tuple[str, str]) -> Any:
            return evaluate(key, Subject(u[0], {"email": u[1]})).value

        def pre(ctx: Any) -> Any:
            return evaluate(key, ctx).value

        def per_request(u: tuple[str, str]) -> bool:
            return Flags(snapshot, Subject(u[0], {"email": u[1]})).enabled(key)

        return full, pre, per_request

    for c in sa.CASES:
        a.full[c], a.pre[c], a.extra_full[c] = mk(sa.FLAG[c])
    a.make_ctx = lambda u: Subject(u[0], {"email": u[1]})
    return a
