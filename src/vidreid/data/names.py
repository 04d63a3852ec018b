"""The names of the dataset layouts, importable without the loaders (the command line's choices
are built from these without importing torch, OpenCV or SciPy; tests check they equal the
registries of :mod:`vidreid.data.datasets` and :mod:`vidreid.data.synthetic`)."""

DATASET_NAMES = ("dukev", "folder", "ilidsvid", "mars", "prid2011")
SYNTH_LAYOUTS = ("prid2011", "ilidsvid", "mars", "dukev", "folder")
