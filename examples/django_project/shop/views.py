from django.http import HttpResponse, JsonResponse
from django.shortcuts import render

import rampup
from rampup.django import flag_required


def home(request):
    # request.flags and rampup.flags are the same per-request object; each flag is decided once.
    checkout_url = "/checkout/" if request.flags.enabled("new-checkout") else "/legacy-checkout/"
    return render(request, "home.html", {"checkout_url": checkout_url})


@flag_required("new-checkout")  # 404 for everyone the flag is off for
def checkout(request):
    return HttpResponse("the new checkout\n")


def legacy_checkout(request):
    return HttpResponse("the old checkout\n")


def all_flags(request):
    # Every flag for this visitor, e.g. for a front end.
    return JsonResponse(rampup.flags.all())
