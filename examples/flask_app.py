"""rampup in a Flask app. Run it with one command, from anywhere:

    python examples/flask_app.py          # serves http://127.0.0.1:5000 (PORT=8080 to change)

then try, in another terminal:

    curl 127.0.0.1:5000/                              # anonymous: old checkout, a sticky button
    curl -H 'X-User-Id: alice' 127.0.0.1:5000/        # staff: the new checkout
    curl -H 'X-User-Id: carol' 127.0.0.1:5000/        # beta customer: the green button
    curl -i 127.0.0.1:5000/admin                      # 404: admin-panel is not served
    curl -H 'X-User-Id: alice' 127.0.0.1:5000/admin   # 200: staff with the admin role
    curl -H 'X-User-Id: carol' 127.0.0.1:5000/flags.json
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask, Request, g, jsonify, render_template

from rampup.flask import Rampup, flag_required

# Stands in for your user table. With Flask-Login the callback below would be
#   user=lambda req: current_user.get_id() if current_user.is_authenticated else None
USERS: dict[str, dict[str, Any]] = {
    "alice": {"email": "alice@example.com", "role": "admin"},
    "carol": {"email": "carol@gmail.com", "beta": True, "app_version": "4.3.0"},
    "dave": {"email": "dave@gmail.com"},
}


def current_user(request: Request) -> dict[str, Any] | None:
    """Who the request is for: a key plus attributes the flag rules test (email, role, ...)."""
    user_id = request.headers.get("X-User-Id")
    if user_id is None:
        return None  # anonymous: rampup keeps the visitor in one bucket with a cookie
    return {"key": user_id, **USERS.get(user_id, {})}


app = Flask(__name__)
# The one line: flags from the file next to this one, hot-reloaded when you edit it.
Rampup(app, flags=Path(__file__).with_name("flags.toml"), user=current_user)


@app.get("/")
def index() -> str:
    # A flag read in a view; the template reads more through the `flags` global.
    checkout = "new" if g.flags.enabled("new-checkout") else "old"
    return render_template("flask_index.html", checkout=checkout)


@app.get("/admin")
@flag_required("admin-panel")  # 404 unless the flag is on for this user
def admin() -> str:
    return "The new admin panel\n"


@app.get("/flags.json")
def all_flags() -> Any:
    # Every flag's value for this user, e.g. to hand to a front end.
    return jsonify(g.flags.all())


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5000")))
