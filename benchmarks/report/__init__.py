"""Turning ``results.json`` into ``report.md``, its plots and the README's blocks.

Layers, each importing only the ones before it: :mod:`.format` (cells and tables),
the sections (:mod:`.details`, :mod:`.sections`, :mod:`.headtohead`,
:mod:`.scaleout`), :mod:`.summary` (the headline table, from the parts' registry),
:mod:`.verdict` and :mod:`.takeaways`, then :mod:`.document` (``report.md``) and
:mod:`.readme` (the README's results block). This package imports none of them
itself, so a part may use :mod:`.format` without loading the report.
"""
