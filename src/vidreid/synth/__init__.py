"""The procedural synthetic benchmark: pedestrians rendered frame by frame (:mod:`.render`) and
written in the official layouts of the video benchmarks (PRID-2011, iLIDS-VID, MARS,
DukeMTMC-VideoReID, the folder layout) and of the image benchmarks (Market-1501, DukeMTMC-reID,
MSMT17, CUHK03, VIPeR, CUHK01: :mod:`.images`) with their protocol files, so that every loader,
test and the demo run with nothing downloaded. Generating datasets is kept apart from loading
them (:mod:`vidreid.data.datasets`)."""

from .generate import (GENERATOR_VERSION, LAYOUTS, PRESETS, PRID_SHORT_PEOPLE, Preset, generate, make_plan, preset,
                       savemat_reproducible)

__all__ = ["GENERATOR_VERSION", "LAYOUTS", "PRESETS", "PRID_SHORT_PEOPLE", "Preset", "generate", "make_plan", "preset",
           "savemat_reproducible"]
