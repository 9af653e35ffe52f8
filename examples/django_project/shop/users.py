"""Who a request is for.

With ``django.contrib.auth`` this is one line::

    def current_user(request):
        return request.user.pk if request.user.is_authenticated else None

This example has no database, so it takes the user from demo headers instead (never trust
such headers in production unless a gateway sets them). Returning a mapping adds attributes
that flag rules test: ``email`` puts someone in the ``staff`` or ``qa`` segment.
"""


def current_user(request):
    user_id = request.headers.get("X-Demo-User")
    if not user_id:
        return None  # anonymous: rampup uses (and, if a split needs it, sets) the rampup_id cookie
    return {"key": user_id, "email": request.headers.get("X-Demo-Email", "")}
