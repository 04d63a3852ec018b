"""Market-1501 (Zheng et al., "Scalable Person Re-identification: A Benchmark", ICCV 2015).

Layout (the official zip, ``Market-1501-v15.09.15/`` or its contents directly in ``root``)::

    root/bounding_box_train/0002_c1s1_000451_03.jpg    # 12,936 images, 751 identities
    root/query/0001_c1s1_001051_00.jpg                 # 3,368 images, 750 identities
    root/bounding_box_test/...                         # 19,732 images

Names: ``<pid>_c<camera>s<sequence>_<frame>_<box>.jpg``, 6 cameras. In ``bounding_box_test``,
pid ``-1`` marks junk boxes (3,819; the official evaluation ignores them: excluded here and
counted) and ``0000`` distractors (2,793; kept, an identity no query has): 15,913 gallery images
of 750 identities plus the distractors. The evaluation excludes, per query, the gallery images
of its pid in its camera (the official ``compute_AP.m``'s junk), as for every dataset here.
"""

from __future__ import annotations

import re

from .imagebase import QueryGalleryImages


class Market1501(QueryGalleryImages):
    name = "market1501"
    NAME = re.compile(r"(?P<pid>-1|\d{4})_c(?P<cam>\d)s\d_\d{6}_\d{2}\.jpg")
    SUBFOLDER = "Market-1501-v15.09.15"
    name_what = "images named <pid>_c<cam>s<seq>_<frame>_<box>.jpg (pid -1 junk, 0000 distractors)"

