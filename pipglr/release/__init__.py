"""Releasing the image: whether to publish, publishing, and what follows a publish.

Belongs here: the rebuild-needed facts and decision (``rebuild``), registry reads and
pushes with digest checks (``registry``) and downstream pipeline triggers
(``downstream``). Image chains (``invoke chain``) are planned by the shared
:mod:`pipglr.chain`, which the image's maintained job images use too.

Does not belong here: how an image is built or labelled (:mod:`pipglr.build`, which
this package uses), anything an operator runs (:mod:`pipglr.ops`).
"""
