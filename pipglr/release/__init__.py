"""Releasing the image: whether to publish, publishing, and what follows a publish.

Belongs here: the rebuild-needed facts and decision (``rebuild``), registry reads and
pushes with digest checks (``registry``), image chains built parents first
(``chain``) and downstream pipeline triggers (``downstream``).

Does not belong here: how an image is built or labelled (:mod:`pipglr.build`, which
this package uses), anything an operator runs (:mod:`pipglr.ops`).
"""
