"""Template tag libraries: ``{% load rampup_tags %}``."""
